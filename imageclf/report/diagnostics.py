"""Is a run trustworthy? Rules over one model's training log and scores that say, in words and with the fix, when its
result tells more about how it was trained than about its family (the compare table and the significance text mark
such a model, so a broken run is never read as a verdict on the family)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

Z95 = 1.96
IMPROVING = 0.01  # validation accuracy gained over the last quarter of a run that ended on its best epoch
OVERFIT_GAP = 0.15  # train accuracy above validation accuracy
MISMATCH_GAP = 0.25  # train above validation accuracy over the first epochs, validation still near chance
WIDE_INTERVAL = 0.2  # a 95% accuracy interval wider than this cannot rank models
FEW_VAL_PER_CLASS = 5  # early stopping on fewer validation images per class than this is noise


@dataclass(frozen=True)
class Finding:
    code: str  # a short tag for the table
    text: str  # what is wrong and what to do


def chance_level(counts: dict[str, int]) -> float:
    """Accuracy with no learning: the larger of 1/classes and the majority class's share of the split."""
    per_class = {c: n for c, n in counts.items() if c != "total"}
    total = sum(per_class.values())
    return max(max(per_class.values()) / total, 1 / len(per_class)) if total else 0.0


def chance_margin(chance: float, n: int) -> float:
    """The 95% binomial margin of chance on n images: an accuracy up to chance + margin is 'at chance'."""
    return Z95 * math.sqrt(chance * (1 - chance) / n)


def diagnose(trained: dict, scored: dict, curves: dict[str, pd.DataFrame], split: str,
             counts: dict[str, dict]) -> list[Finding]:
    """Findings for one model: `trained` its train metrics, `scored` its evaluate metrics, `curves` its per-epoch
    logs (accuracy: validation, train_accuracy: training), `counts` the split stage's class counts."""
    found = []
    detail = scored.get(split, {})
    chance = chance_level(counts[split])
    if detail.get("samples"):
        n, accuracy = detail["samples"], detail["accuracy"]
        margin = chance_margin(chance, n)
        low, high = detail.get("accuracy_ci95_low"), detail.get("accuracy_ci95_high")
        wide = low is not None and high - low > WIDE_INTERVAL
        if accuracy <= chance + margin:
            # on a few images a model that learned something can still fall within chance's margin: say which it is
            verdict = (f"on {n} images that cannot tell a model that learned nothing from one that learned a little; "
                       f"add images or a larger {split} split" if wide else
                       "it learned nothing usable; read the other warnings and its training curves")
            found.append(Finding("at chance", f"{split} accuracy {accuracy:.1%} is within chance ({chance:.1%}, the "
                                 f"larger of 1/classes and the majority share, +-{margin:.1%}): {verdict}"))
        if wide:
            found.append(Finding("few images", f"only {n} {split} images: its 95% interval spans "
                                 f"{(high - low):.0%}, too wide to rank models; add images or a larger {split} split"))
    val = curves.get("accuracy")
    epochs_run, best = trained.get("epochs_run"), trained.get("best_epoch")
    planned = trained.get("budget", {}).get("epochs", epochs_run)
    if val is not None and len(val) >= 4 and best == epochs_run == planned:
        quarter = val["accuracy"].iloc[-max(2, len(val) // 4) - 1:]
        gain = float(quarter.iloc[-1] - quarter.iloc[0])
        if gain > IMPROVING:
            found.append(Finding("still improving", f"its best epoch was the last of {epochs_run} and validation "
                                 f"accuracy rose {gain:.1%} over the last quarter: raise epochs (or min_steps)"))
    train_acc, val_acc = scored.get("train", {}).get("accuracy"), scored.get("val", {}).get("accuracy")
    if train_acc is not None and val_acc is not None and train_acc - val_acc > OVERFIT_GAP:
        anywhere = ("" if trained.get("global_pooling") else "; where the objects can be anywhere in the picture, a "
                    "convolutional family with pooling: max (auto uses it on images above about 32 px)")
        found.append(Finding("overfitting", f"train accuracy {train_acc:.1%} against validation {val_acc:.1%}: it "
                             "memorises its training images; add augmentation (augment: 1 or 2), dropout or l2, "
                             f"or images{anywhere}"))
    fit_acc = curves.get("train_accuracy")
    if val is not None and fit_acc is not None and len(val):
        first = max(3, len(val) // 3)
        gap = (fit_acc["accuracy"].iloc[:first] - val["accuracy"].iloc[:first]).mean()
        if gap > MISMATCH_GAP and val["accuracy"].iloc[:first].max() < chance + 0.1:
            found.append(Finding("val mismatch", "validation accuracy stayed near chance while training accuracy "
                                 f"rose from the first epochs (mean gap {gap:.0%}): what the model computes at "
                                 "evaluation differs from training (batch-norm statistics of too few steps, or "
                                 "validation images unlike the training ones); raise min_steps or check the split"))
    classes = len([c for c in counts["val"] if c != "total"])
    if counts["val"]["total"] < FEW_VAL_PER_CLASS * classes:
        found.append(Finding("small val", f"early stopping and the kept epoch rest on {counts['val']['total']} "
                             f"validation images for {classes} classes; raise split.fractions.val"))
    return found
