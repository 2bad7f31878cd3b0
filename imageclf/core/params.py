"""Read params.yaml and validate it early, with one-line messages that name the key and what was expected.

This is the validation core only. Each section's keys live beside the code that reads them, as a `PARAMS` section
(`imageclf.data.sources.PARAMS` for `data:`, `imageclf.cache.prepare.PARAMS` for `prepare:`, ...), and a stage loads
the sections it uses: `params.load({"data": sources.PARAMS, "train": None})` (None: taken as it is, checked later by
the code that reads it). The sections kept here, `models:` and `seeds:`, decide which stages exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imageclf.core.errors import UserError

PARAMS_FILE = Path("params.yaml")
NUMBER = (int, float)


@dataclass(frozen=True)
class Field:
    """One expected key: accepted types, optional choices / bounds, whether null is allowed."""

    types: tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None  # extra rule; returns a problem or None
    doc: str = ""  # what the value means (listings)

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else f"must be set ({self.describe()}), got null"
        if isinstance(value, bool) and bool not in self.types:
            return f"must be {self.describe()}, got {value!r}"
        if not isinstance(value, self.types):
            return f"must be {self.describe()}, got {value!r}"
        if self.choices is not None and value not in self.choices:
            hint = did_you_mean(value, self.choices)
            return f"must be one of {', '.join(map(str, self.choices))}; got {value!r}{hint}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum}, got {value!r}"
        return self.check(value) if self.check else None

    def describe(self) -> str:
        names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
                 list: "a list", dict: "a mapping"}
        types = [t for t in self.types if not (t is int and float in self.types)]  # (int, float): a number
        text = " or ".join(names.get(t, t.__name__) for t in types)
        return text + (" or null" if self.nullable else "")

    def accepts(self) -> str:
        """The values this field takes, in words (for generated tables)."""
        if self.choices is not None:
            return " | ".join(map(str, self.choices))
        if self.check is not None and hasattr(self.check, "expects"):
            return self.check.expects
        bounds = [f">= {self.minimum}" if self.minimum is not None else "",
                  f"<= {self.maximum}" if self.maximum is not None else ""]
        return self.describe() + "".join(f", {b}" for b in bounds if b)


@dataclass(frozen=True)
class Section:
    """A params.yaml section: its keys, and an optional rule across keys, called with the section and where it is
    ("params.yaml: 'train.lenet5'"); it raises a UserError that starts with that."""

    fields: Mapping[str, Field]
    rules: Callable[[dict, str], None] | None = field(default=None, compare=False)


def did_you_mean(value: object, known) -> str:
    """' (did you mean 'x'?)' for the closest known name, or ''."""
    hint = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


# --- the constraint vocabulary shared by every section ---------------------------------------------------------------


def rate(value: float) -> str | None:
    return None if 0 <= value < 1 else f"must be a rate in [0, 1), got {value!r}"


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0, got {value!r}"


rate.expects = "a number in [0, 1)"
positive.expects = "a number > 0"


def int_list(min_len: int) -> Callable[[Any], str | None]:
    def check(value: list) -> str | None:
        if len(value) < min_len or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
            least = f"at least {min_len} " if min_len else ""
            return f"must be a list of {least}integers >= 1, got {value!r}"
        return None

    return check


def validate_section(name: str, section: Any, schema: Section | Mapping[str, Field],
                     where: str = "params.yaml") -> dict:
    """Check one mapping against its schema: unknown keys, missing keys and bad values are one-line errors."""
    fields = schema.fields if isinstance(schema, Section) else schema
    if not isinstance(section, dict):
        raise UserError(f"{where}: '{name}' must be a mapping of keys, got {section!r}")
    for key in section:
        if key not in fields:
            tip = did_you_mean(f"{name}.{key}", [f"{name}.{k}" for k in fields]) or f"; known keys: {', '.join(fields)}"
            raise UserError(f"{where}: unknown key '{name}.{key}'{tip}")
    for key, spec in fields.items():
        if key not in section:
            raise UserError(f"{where}: missing key '{name}.{key}' ({spec.describe()}); add it to the file")
        problem = spec.problem(section[key])
        if problem:
            raise UserError(f"{where}: '{name}.{key}' {problem}")
    if isinstance(schema, Section) and schema.rules:
        schema.rules(section, f"{where}: '{name}'")
    return section


def read(path: Path = PARAMS_FILE) -> dict:
    """params.yaml as a mapping of sections, unvalidated."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run the stage from the project root") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return raw


def load(sections: Mapping[str, Section | None], path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml and return the sections asked for, each validated against its schema (None: as it is)."""
    raw = read(path)
    out = {}
    for name, schema in sections.items():
        if name not in raw:
            raise UserError(f"{path}: missing section '{name}'")
        out[name] = raw[name] if schema is None else validate_section(name, raw[name], schema, str(path))
    if "models" in out and "seeds" in out:
        _seeds_within_models(out["seeds"], out["models"], str(path))
    return out


# --- models: and seeds: (which per-model stages dvc.yaml expands) -----------------------------------------------------


def _names(value: Any) -> str | None:
    if all(isinstance(v, str) for v in value) and len(set(value)) == len(value):
        return None
    return f"must be a list of distinct entry names under 'train:', got {value!r}"


def _seed_values(value: list) -> str | None:
    if value and len(set(value)) == len(value) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                       for v in value):
        return None
    return f"must be a list of distinct integers >= 0, got {value!r}"


MODELS = Section({  # one DVC stage group each: editing transfer code never re-runs a from-scratch model
    "scratch": Field((list,), check=_names),
    "transfer": Field((list,), check=_names),
})
SEEDS = Section({  # training variance: listed models train once more per seed value (stage groups seed*)
    "scratch": Field((list,), check=_names),
    "transfer": Field((list,), check=_names),
    "values": Field((list,), check=_seed_values),
})


def _seeds_within_models(seeds: dict, models: dict, where: str) -> None:
    for group in ("scratch", "transfer"):
        extra = [name for name in seeds[group] if name not in models[group]]
        if extra:
            raise UserError(f"{where}: seeds.{group} lists {', '.join(extra)}, not in models.{group}; seeded runs "
                            f"repeat listed models: add {'it' if len(extra) == 1 else 'them'} to models.{group} first")


def model_names(models: dict) -> list[str]:
    """Every model dvc repro trains, from-scratch entries first."""
    return [*models["scratch"], *models["transfer"]]


def model_argument(argv: list[str], stage: str) -> str:
    """The model name a per-model stage is called with."""
    if len(argv) != 2:
        raise UserError(f"usage: python -m stages.{stage} <model name listed in params.yaml 'models:'>")
    return argv[1]
