"""imageclf: the library behind the DVC stages that train, evaluate and compare image classifiers.

The package tree follows the pipeline: core (params, errors, paths), data, cache, models, train, evaluate, report,
deploy, and cli (the hand-run tools). Package __init__ files hold no code, so dvc.yaml deps stay exact.
"""
