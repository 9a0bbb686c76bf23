"""One seed for Python's and NumPy's global generators (torch strategies seed torch too)."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed `random` and NumPy's legacy global state; return a fresh Generator for the run.

    Prefer the returned Generator (or `context.services.rng`) over global state in new code.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    return np.random.default_rng(seed)
