"""Transition batches from disk: our loader against a naive one, side by side in one process.

Targets (issue 3): from the second epoch on, at least 5 times the throughput of a naive
loader that re-reads every `.npz` each epoch (as the original Townlet trainer did), on a
1M-transition CartPole-shaped dataset and a 100k-transition Townlet-shaped one (map 4x11x11,
68 features), batches of 256; and streaming peak memory within twice the largest trajectory
plus one batch.

    python benchmarks/data_loader.py [--epochs 3] [--scale 1.0]

`--scale` shrinks both datasets for a quick look; record full-scale figures in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from townlet_core.data import ReplayDataset, TransitionLoader

BATCH = 256


def make_dataset(
    root: Path, trajectories: int, steps: int, features: int, map_shape: tuple[int, ...] | None
) -> Path:
    """Write `trajectories` samples of `steps` steps (uncompressed, as captures are read most)."""
    rng = np.random.default_rng(0)
    names = []
    for index in range(trajectories):
        arrays = {
            "features": rng.normal(size=(steps, features)).astype(np.float32),
            "actions": rng.integers(0, 4, size=steps).astype(np.int64),
            "old_log_probs": np.zeros(steps, np.float32),
            "value_preds": np.zeros(steps + 1, np.float32),
            "rewards": rng.normal(size=steps).astype(np.float32),
            "dones": np.zeros(steps, bool),
        }
        if map_shape is not None:
            arrays["map"] = rng.normal(size=(steps, *map_shape)).astype(np.float32)
        name = f"t{index:05d}.npz"
        np.savez(root / name, **arrays)
        names.append(name)
    (root / "manifest.json").write_text(json.dumps(names))
    return root / "manifest.json"


def naive_epochs(manifest: Path, epochs: int, seed: int) -> Iterator[Iterator[int]]:
    """Each epoch re-reads every sample, concatenates, shuffles and slices batches."""
    paths = [manifest.parent / name for name in json.loads(manifest.read_text())]
    rng = np.random.default_rng(seed)
    for _ in range(epochs):

        def one_epoch() -> Iterator[int]:
            loaded = [dict(np.load(p)) for p in paths]
            features = np.concatenate([d["features"] for d in loaded])
            maps = [d["map"] for d in loaded if "map" in d]
            map_all = np.concatenate(maps) if maps else None
            actions = np.concatenate([d["actions"] for d in loaded])
            order = rng.permutation(len(actions))
            for start in range(0, len(actions), BATCH):
                index = order[start : start + BATCH]
                batch = (
                    features[index],
                    None if map_all is None else map_all[index],
                    actions[index],
                )
                yield len(batch[2])

        yield one_epoch()


def ours_epochs(manifest: Path, epochs: int, seed: int, streaming: bool) -> Iterator[Iterator[int]]:
    loader: TransitionLoader | None = None
    for _ in range(epochs):

        def one_epoch() -> Iterator[int]:
            nonlocal loader
            if loader is None:  # loading happens in epoch 1, as it does for the naive loader
                loader = TransitionLoader(
                    ReplayDataset(manifest, streaming=streaming), batch_size=BATCH, seed=seed
                )
            for batch in loader:
                yield len(batch)

        yield one_epoch()


def throughput(epochs: Iterator[Iterator[int]]) -> list[float]:
    """Transitions per second of each epoch."""
    rates = []
    for epoch in epochs:
        start = time.perf_counter()
        count = sum(epoch)
        rates.append(count / (time.perf_counter() - start))
    return rates


def streaming_peak(manifest: Path, seed: int) -> tuple[int, int]:
    """Peak bytes the streaming loader holds during one epoch, and the bound the issue allows.

    The consumer drops each batch before asking for the next (as a training step that does
    not keep its batch would), so the figure is the loader's own footprint. The second epoch
    is measured after two unmeasured ones, which fill interpreter-wide caches once.
    """
    dataset = ReplayDataset(manifest, streaming=True)
    loader = TransitionLoader(dataset, batch_size=BATCH, seed=seed)
    largest = max(sum(a.nbytes for a in t.arrays().values()) for t in dataset.trajectories())
    per_step = largest // max(t.timesteps for t in dataset.trajectories())
    bound = 2 * largest + BATCH * per_step
    for _ in range(2):
        for batch in loader:
            del batch
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    for batch in loader:
        del batch
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, bound


def report(label: str, manifest: Path, epochs: int) -> bool:
    runs: dict[str, Callable[[], list[float]]] = {
        "naive (re-read every epoch)": lambda: throughput(naive_epochs(manifest, epochs, 0)),
        "townlet in-memory": lambda: throughput(ours_epochs(manifest, epochs, 0, streaming=False)),
        "townlet streaming": lambda: throughput(ours_epochs(manifest, epochs, 0, streaming=True)),
    }
    rates = {name: run() for name, run in runs.items()}
    naive_later = float(np.mean(rates["naive (re-read every epoch)"][1:]))
    print(f"\n{label}")
    print(
        f"  {'loader':<30} "
        + " ".join(f"{'epoch ' + str(i + 1):>14}" for i in range(epochs))
        + f" {'x naive (2+)':>13}"
    )
    met = True
    for name, values in rates.items():
        ratio = float(np.mean(values[1:])) / naive_later
        print(f"  {name:<30} " + " ".join(f"{v:>12,.0f}/s" for v in values) + f" {ratio:>13.1f}")
        if name == "townlet in-memory":
            met &= ratio >= 5.0
    peak, bound = streaming_peak(manifest, 0)
    print(
        f"  streaming peak traced memory: {peak / 2**10:,.1f} KiB (bound {bound / 2**10:,.1f} KiB: "
        f"2 x largest trajectory + one batch) -> {'ok' if peak <= bound else 'OVER'}"
    )
    return met and peak <= bound


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} "
        f"numpy={np.__version__} batch={BATCH} epochs={args.epochs}"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        cartpole = Path(tmp) / "cartpole"
        cartpole.mkdir()
        n_cart = max(2, int(2000 * args.scale))
        ok &= report(
            f"CartPole-shaped: {n_cart} trajectories x 500 steps = {n_cart * 500:,} transitions",
            make_dataset(cartpole, n_cart, 500, 4, None),
            args.epochs,
        )
        townlet = Path(tmp) / "townlet"
        townlet.mkdir()
        n_town = max(2, int(500 * args.scale))
        ok &= report(
            f"Townlet-shaped: {n_town} trajectories x 200 steps = {n_town * 200:,} transitions "
            "(map 4x11x11, 68 features)",
            make_dataset(townlet, n_town, 200, 68, (4, 11, 11)),
            args.epochs,
        )
    print("\ntargets met" if ok else "\ntarget NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
