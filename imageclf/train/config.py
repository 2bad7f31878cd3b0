"""One model entry's configuration: train_defaults merged with train.<name>, every key checked before anything runs."""

from __future__ import annotations

from imageclf.core.errors import UserError
from imageclf.core.params import did_you_mean, validate_section
from imageclf.models.registry import FEATURE_KEYS, HYPERPARAMETERS, REGISTRY, Family, family
from imageclf.train.settings import PARAMS as TRAINING

TRAIN_KEYS = TRAINING.fields


def model_config(params: dict, name: str) -> dict:
    """{name, family, hyper (the entry's own hyperparameters), **training keys}; one-line errors name the key."""
    entries = params.get("train")
    if not isinstance(entries, dict) or not entries:
        raise UserError("params.yaml: 'train' must map model names to entries like {family: lenet5, lr: 0.001}")
    if name not in entries:
        raise UserError(f"params.yaml: no model entry 'train.{name}'{did_you_mean(name, entries)}; "
                        f"entries: {', '.join(entries)}")
    entry = entries[name]
    if not isinstance(entry, dict) or "family" not in entry:
        raise UserError(f"params.yaml: 'train.{name}' needs a 'family' key, e.g. {{family: lenet5}}")
    fam = family(entry["family"], f"train.{name}.family")
    training = dict(params["train_defaults"])
    hyper = fam.hyperparameters()
    chosen: dict[str, object] = {}
    for key, value in entry.items():
        if key == "family":
            continue
        if key in TRAIN_KEYS:
            training[key] = value
        elif key in hyper:
            problem = HYPERPARAMETERS[key].problem(value)
            if problem:
                raise UserError(f"params.yaml: 'train.{name}.{key}' {problem}")
            chosen[key] = value
        else:
            raise UserError(f"params.yaml: 'train.{name}.{key}' is neither a training key nor a hyperparameter of "
                            f"family '{fam.name}'{did_you_mean(key, [*TRAIN_KEYS, *hyper])}; "
                            f"family keys: {', '.join(hyper) or 'none'}")
    validate_section(f"train.{name}", training, TRAINING)
    if chosen.get("features") is not None:
        chosen.update(_feature_set(params.get("features"), name, chosen))
    if fam.check:
        fam.check({**hyper, **chosen}, training, f"train.{name}")
    return {"name": name, "family": fam.name, "hyper": chosen, **training}


def check_group(params: dict, name: str, group: str) -> None:
    """A transfer entry run by the scratch stages (or the reverse) is named with its group before anything else is
    checked (the scratch stages do not even read `features:`)."""
    entry = (params.get("train") or {}).get(name)
    family = entry.get("family") if isinstance(entry, dict) else None
    if family is None or (family == "transfer") == (group == "transfer"):
        return
    right = "transfer" if family == "transfer" else "scratch"
    raise UserError(f"params.yaml: '{name}' is a {family} entry; list it under models.{right}, not models.{group}")


def _feature_set(sets: object, name: str, chosen: dict) -> dict:
    """The backbone keys of the features: set a frozen entry names (so the two cannot drift apart)."""
    wanted = chosen["features"]
    sets = sets if isinstance(sets, dict) else {}
    if wanted not in sets:
        raise UserError(f"params.yaml: 'train.{name}.features' is {wanted!r}, not a set under 'features:'"
                        f"{did_you_mean(wanted, sets)}; sets: {', '.join(sets) or 'none'}")
    twice = [k for k in FEATURE_KEYS if k in chosen]
    if twice:
        raise UserError(f"params.yaml: 'train.{name}' sets {', '.join(twice)} and names features set '{wanted}', "
                        f"which fixes them; remove them from the entry (or change them in features.{wanted})")
    if chosen.get("mode", "frozen") != "frozen":
        raise UserError(f"params.yaml: 'train.{name}.features' needs mode frozen (a trained backbone changes its "
                        "features); remove features and set backbone, weights, input_size, pooling instead")
    return {k: v for k, v in sets[wanted].items() if k in FEATURE_KEYS}


def hyperparameters(cfg: dict) -> dict:
    """The entry's family hyperparameters, defaults included."""
    return {**REGISTRY[cfg["family"]].hyperparameters(), **cfg["hyper"]}


def check_input(fam: Family, shape: tuple[int, int, int], name: str) -> None:
    if min(shape[:2]) < fam.min_size:
        raise UserError(f"train.{name}: images of {shape[0]}x{shape[1]} px are too small for family "
                        f"'{fam.name}' (needs >= {fam.min_size} px); raise prepare.image_size")
