"""Keeps TensorFlow quiet in test output; makes the repo root importable."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
