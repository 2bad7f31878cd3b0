"""imageclf: the library behind the DVC stages that train, evaluate and compare image classifiers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of stage logs
