"""Report pages: blocks of (kind, payload) with kind h1, h2, p, table (a DataFrame), details ((summary, DataFrame): a
table folded away until opened) or img (a PNG path), written as Markdown or as one self-contained HTML page. The
compare, evaluate and export stages and the experiments report share it without reading each other."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style table without extra dependencies (pandas' to_markdown needs tabulate)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "-"
        if isinstance(value, float):  # rates and losses to 4 decimals; seconds and speeds to 1
            return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def markdown_page(blocks: list[tuple], root: Path) -> str:
    """Report blocks ((kind, payload): h1, h2, p, table, img) as Markdown; images linked relative to root."""
    out = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + payload)
        elif kind == "p":
            out.append(payload)
        elif kind == "table":
            out.append(markdown_table(payload))
        elif kind == "details":
            summary, frame = payload
            out.append(f"<details><summary>{html.escape(summary)}</summary>\n\n{markdown_table(frame)}\n\n</details>")
        else:
            out.append(f"![{payload.stem}]({payload.relative_to(root).as_posix()})")
    return "\n\n".join(out) + "\n"


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-", border=0)


def html_page(blocks: list[tuple], title: str) -> str:
    """Report blocks as one self-contained HTML page (images embedded)."""
    body = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "table":
            body.append(_html_table(payload))
        elif kind == "details":
            summary, frame = payload
            body.append(f"<details><summary>{html.escape(summary)}</summary>{_html_table(frame)}</details>")
        else:
            data = base64.b64encode(payload.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(payload.stem)}" src="data:image/png;base64,{data}">')
    # a table wider than the page scrolls inside itself, never the page
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 8px}"
             "table{border-collapse:collapse;margin:1em 0;display:block;overflow-x:auto;max-width:100%}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}"
             "summary{cursor:pointer;margin:1em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
