"""Augmentation levels 0-3: what each one does (imageclf.cache.augment builds them as Keras layers).

Kept free of TensorFlow so params validation can name the levels before anything heavy loads.
"""

# level -> settings; the README's table ("Augmentation levels") is rendered from these three dicts.
LEVELS: dict[int, dict[str, float | bool]] = {
    0: {},
    1: {"zoom": 0.1, "rotation_deg": 5},
    2: {"zoom": 0.1, "rotation_deg": 40, "hflip": 0.3, "vflip": 0.2, "width_shift": 0.2, "height_shift": 0.1,
        "contrast": 0.3},
    # the 8 rotations and mirror images of a square, each equally likely: exact and lossless, for top-down images
    # (solar cells, microscopy, satellite tiles) whose label does not depend on orientation
    3: {"rot90": True, "hflip": 0.5},
}
NAMES = {0: "none", 1: "mid", 2: "high", 3: "dihedral"}
SETTINGS = {"zoom": "zoom (fraction)", "rotation_deg": "rotation (deg)",
            "rot90": "quarter turns (0-3 equally likely; 0 or 2 when not square)",
            "hflip": "horizontal flip (prob)", "vflip": "vertical flip (prob)", "width_shift": "width shift (fraction)",
            "height_shift": "height shift (fraction)", "contrast": "contrast (factor)"}
