"""audit: likely label errors (cleanlab on cross-validated probabilities from cached features) and image issues
(cleanvision on the raw images) over every split; reports/audit/ (imageclf/data/audit.py)."""

from imageclf.core import params
from imageclf.core.errors import UserError, cli
from imageclf.core.params import did_you_mean
from imageclf.data import audit


@cli
def main() -> None:
    p = params.load({"audit": audit.PARAMS, "features": None})
    sets = p["features"] or {}
    if p["audit"]["labels"] and p["audit"]["features"] not in sets:
        raise UserError(f"params.yaml: 'audit.features' is {p['audit']['features']!r}, not a set under 'features:'"
                        f"{did_you_mean(p['audit']['features'], sets)}; sets: {', '.join(sets) or 'none'}; or set "
                        "audit.labels false")
    facts = audit.run(p)
    found = ", ".join(f"{k} {v}" for k, v in facts.items() if k != "images")
    print(f"audit: {facts['images']} images; {found or 'no check ran (audit.labels, audit.images)'}; "
          f"reports/audit/")


if __name__ == "__main__":
    main()
