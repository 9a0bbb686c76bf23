"""The cross-entropy method's sampling distribution: a diagonal Gaussian over parameters.

Each iteration samples a population around `mean`, keeps the best-scoring candidates (the
elite) and refits `mean` and `std` to them. Extra noise, added in quadrature and decayed over
time, keeps the spread from collapsing before good policies are found (Szita and Lőrincz,
"Learning Tetris Using the Noisy Cross-Entropy Method", 2006).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def elite_count(population: int, elite_fraction: float) -> int:
    """How many candidates form the elite: the rounded fraction, at least one."""
    return max(1, round(population * elite_fraction))


class GaussianSearch:
    """Mean and per-parameter spread of the distribution CEM samples candidates from."""

    def __init__(self, dim: int, initial_std: float) -> None:
        self.mean: FloatArray = np.zeros(dim)
        self.std: FloatArray = np.full(dim, initial_std)

    def sample(self, rng: np.random.Generator, population: int, extra_std: float) -> FloatArray:
        """`population` candidate vectors, one per row."""
        spread = np.sqrt(self.std**2 + extra_std**2)
        noise = rng.standard_normal((population, self.mean.size))
        candidates: FloatArray = self.mean + spread * noise
        return candidates

    def refit(self, candidates: FloatArray, returns: FloatArray, n_elite: int) -> FloatArray:
        """Move the distribution onto the `n_elite` best candidates; return their returns.

        The sort is stable so equal returns (common: many CartPole candidates hit the cap)
        keep a repeatable order.
        """
        order = np.argsort(-returns, kind="stable")[:n_elite]
        elite = candidates[order]
        self.mean = elite.mean(axis=0)
        self.std = elite.std(axis=0)
        elite_returns: FloatArray = returns[order]
        return elite_returns
