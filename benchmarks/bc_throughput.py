"""Behaviour-cloning training throughput against two references, in one process.

Targets (issue 4), one torch thread, batch 64, same network and optimiser:
- at least 1.5 times a naive loop in the style of the original (TensorDataset + DataLoader
  with shuffling);
- within 10% of the arithmetic limit: the same forward, backward and optimiser step (ours:
  fused Adam) over batches already sliced in memory, with no data handling at all.

The naive loop uses plain `torch.optim.Adam`, as the original did.

    python benchmarks/bc_throughput.py [--epochs 3]

Datasets: Townlet-shaped (map 4x11x11, 68 features, 100k transitions) and CartPole
demonstrations (4 features), both synthetic so the figures do not depend on a capture.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.nn import build_network
from townlet_strategies_bc.trainer import Split, _epoch, make_optimizer

BATCH = 64


def make_split(n: int, features: int, map_shape: tuple[int, int, int] | None) -> Split:
    rng = np.random.default_rng(0)
    return Split(
        features=torch.from_numpy(rng.random((n, features), dtype=np.float32)),
        map=None
        if map_shape is None
        else torch.from_numpy((rng.random((n, *map_shape)) < 0.05).astype(np.float32)),
        actions=torch.from_numpy(rng.integers(0, 4, n)),
    )


def fresh(split: Split, ours: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The network, with our optimiser (the loop and the limit) or plain Adam (naive)."""
    observation = ObservationSpec(
        features_dim=int(split.features.shape[1]),
        map_shape=None if split.map is None else tuple(split.map.shape[1:]),  # type: ignore[arg-type]
    )
    network = build_network(NetworkSpec(), observation, 4, seed=0)
    if ours:
        return network, make_optimizer(network, 1e-3, 0.0)
    return network, torch.optim.Adam(network.parameters(), lr=1e-3)


def townlet_epoch(split: Split, epoch: int) -> None:
    network, optimizer = STATE["townlet"]
    order = torch.from_numpy(np.random.default_rng([0, epoch]).permutation(split.size))
    _epoch(network, optimizer, split, order, BATCH)  # type: ignore[arg-type]


def naive_epoch(split: Split, epoch: int) -> None:
    network, optimizer = STATE["naive"]
    tensors = [split.features] + ([split.map] if split.map is not None else []) + [split.actions]
    loader = DataLoader(TensorDataset(*tensors), batch_size=BATCH, shuffle=True)
    for batch in loader:
        features, actions = batch[0], batch[-1]
        map_ = batch[1] if split.map is not None else None
        loss = functional.cross_entropy(network.logits(features, map_), actions)  # type: ignore[operator]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()


def limit_epoch(split: Split, epoch: int) -> None:
    network, optimizer = STATE["limit"]
    batches = LIMIT_BATCHES[id(split)]
    for features, map_, actions in batches:
        loss = functional.cross_entropy(network.logits(features, map_), actions)  # type: ignore[operator]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()


STATE: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] = {}
LIMIT_BATCHES: dict[int, list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]] = {}


def measure(name: str, run: Callable[[Split, int], None], split: Split, epochs: int) -> float:
    """Median samples/second over `epochs` epochs (after one warm-up epoch)."""
    STATE[name] = fresh(split, ours=name != "naive")
    run(split, epochs + 1)  # warm-up epoch
    rates = []
    for epoch in range(epochs):
        start = time.perf_counter()
        run(split, epoch)
        rates.append(split.size / (time.perf_counter() - start))
    return float(np.median(rates))


def report(label: str, split: Split, epochs: int) -> bool:
    LIMIT_BATCHES[id(split)] = [
        (
            split.features[i : i + BATCH].contiguous(),
            None if split.map is None else split.map[i : i + BATCH].contiguous(),
            split.actions[i : i + BATCH].contiguous(),
        )
        for i in range(0, split.size, BATCH)
    ]
    # interleave the three so drift in machine load hits all of them alike
    results: dict[str, list[float]] = {"naive": [], "townlet": [], "limit": []}
    for _ in range(3):
        results["naive"].append(measure("naive", naive_epoch, split, epochs))
        results["townlet"].append(measure("townlet", townlet_epoch, split, epochs))
        results["limit"].append(measure("limit", limit_epoch, split, epochs))
    rate = {k: float(np.median(v)) for k, v in results.items()}
    vs_naive = rate["townlet"] / rate["naive"]
    vs_limit = rate["townlet"] / rate["limit"]
    print(f"\n{label}: {split.size:,} transitions, batch {BATCH}")
    print(f"  naive TensorDataset+DataLoader  {rate['naive']:>10,.0f} samples/s")
    print(
        f"  townlet bc loop                 {rate['townlet']:>10,.0f} samples/s  "
        f"{vs_naive:.2f}x naive (target 1.5), {vs_limit:.1%} of the limit (target 90%)"
    )
    print(f"  arithmetic limit                {rate['limit']:>10,.0f} samples/s")
    return vs_naive >= 1.5 and vs_limit >= 0.9


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--townlet-transitions", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} "
        f"torch={torch.__version__} threads={torch.get_num_threads()}"
    )
    ok = report(
        "Townlet-shaped (map 4x11x11, 68 features)",
        make_split(args.townlet_transitions, 68, (4, 11, 11)),
        args.epochs,
    )
    ok &= report("CartPole demonstrations (4 features)", make_split(50_000, 4, None), args.epochs)
    print("\ntargets met" if ok else "\ntarget NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
