"""CLI start-up against `import torch`, side by side in one process tree.

Targets (issue 2): `townlet --version` and `townlet strategies list` each under 0.3 s median
and at least 5 times faster than `python -c "import torch"` in the same environment.

    python benchmarks/cli_startup.py [--runs 21]

Run it in the development environment (torch installed). Record the printed table in
benchmarks/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3
TARGET_RATIO = 5.0


def median_wall_time(command: list[str], runs: int) -> float:
    """Median seconds of `runs` executions (after one warm-up run that fills the OS caches)."""
    env = dict(os.environ)
    subprocess.run(command, capture_output=True, check=True, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    townlet = str(Path(sys.executable).with_name("townlet"))
    torch_time = median_wall_time([sys.executable, "-c", "import torch"], args.runs)
    rows = [
        ("townlet --version", [townlet, "--version"]),
        ("townlet strategies list", [townlet, "strategies", "list"]),
        ("townlet --help", [townlet, "--help"]),
    ]
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()} "
        f"python={platform.python_version()} runs={args.runs}"
    )
    print(f"{'command':<26} {'median s':>9} {'x faster than import torch':>28} {'target met':>11}")
    torch_label = 'python -c "import torch"'
    print(f"{torch_label:<26} {torch_time:>9.3f} {'1.0':>28} {'-':>11}")
    all_met = True
    for label, command in rows:
        seconds = median_wall_time(command, args.runs)
        ratio = torch_time / seconds
        met = seconds < TARGET_SECONDS and ratio >= TARGET_RATIO
        all_met &= met
        print(f"{label:<26} {seconds:>9.3f} {ratio:>28.1f} {'yes' if met else 'NO':>11}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
