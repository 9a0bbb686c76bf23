"""Data-parallel runs: `townlet train --nproc N` starts N ranks with torchrun.

The launcher is torchrun itself (`torch.distributed.run`, imported only here and only when
`--nproc` is above 1): it starts the ranks on this machine (`--standalone`), stops every
rank when one fails, and reports which. Before it starts anything, the launcher settles
what every rank must share (the seed and the run directory) and checks that the strategy
supports it, so a mistake costs no process start. Plain `torchrun ... -m townlet_core.cli
train ...` works too (multi-node included): the ranks then derive the seed and the run
directory from torchrun's rendezvous id when the command names neither.

Each rank is an ordinary `townlet train` process that reads its place from torchrun's
variables (`World.from_environ`); rank 0 writes the run directory, the others discard what
they would write (`execution.execute`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from townlet_core.contract.spec import StrategySpec
from townlet_core.contract.world import World
from townlet_core.errors import ConfigError
from townlet_core.runtime.config import RunConfig

#: torchrun's name for its rendezvous id ("none" when a multi-node launch gave none).
RUN_ID_VARIABLE = "TORCHELASTIC_RUN_ID"
#: Exit codes with which a rank reports a failure it has already explained on stderr.
EXPLAINED_EXIT_CODES = (1, 2, 130)
#: A rank's exit code when its launcher died (`townlet_core.nn.distributed`; no torch here).
LAUNCHER_GONE_EXIT_CODE = 75


def check_distributed(spec: StrategySpec, nproc: int, world: World) -> None:
    """`--nproc` above 1 (or a torchrun world) only for a strategy that declares it can."""
    if (nproc > 1 or world.distributed) and not spec.supports_distributed:
        raise ConfigError(
            f"strategy '{spec.name}' runs in one process and does not support --nproc "
            f"(asked for {max(nproc, world.size)} processes); drop --nproc, or use a strategy "
            "that supports it (ppo, bc)"
        )
    if world.distributed and nproc not in (1, world.size):
        raise ConfigError(
            f"the config asks for nproc={nproc}, but torchrun started {world.size} processes; "
            "make them agree (or leave nproc out under torchrun)"
        )


def check_ranks_fit_devices(
    device: str, nproc: int, world: World, environ: Mapping[str, str] | None = None
) -> None:
    """Several ranks on one machine on CUDA need a GPU each: NCCL refuses two ranks on one
    GPU, and only at the first collective ("Duplicate GPU detected"), which a rank can only
    report as lost contact. Refused here, before any process starts, with what to change.
    The ranks on this machine are `--nproc`; in a rank, torchrun's `LOCAL_WORLD_SIZE`, or
    without it (another launcher) at least `LOCAL_RANK + 1`: never the whole world's size,
    which spans every machine of a multi-node run."""
    env = os.environ if environ is None else environ
    local = nproc
    if world.distributed:
        given = env.get("LOCAL_WORLD_SIZE", "")
        local = int(given) if given.isdigit() else world.local_rank + 1
    if local <= 1 or device in ("cpu", "mps"):
        return
    from townlet_core.nn.device import cuda_device_count

    gpus = cuda_device_count()
    if gpus == 0:
        return  # auto: the ranks train on the CPU and talk over gloo
    if device.startswith("cuda:"):
        raise ConfigError(
            f"--device {device} puts all {local} ranks of this machine on one GPU, which NCCL "
            f"refuses; use --device cuda (each rank its own GPU; {gpus} here) or --device cpu"
        )
    if local > gpus:
        raise ConfigError(
            f"{local} ranks on this machine but {gpus} CUDA device(s): NCCL needs a GPU per "
            f"rank; use --nproc {gpus} or fewer, or --device cpu to train the ranks on the CPU "
            "(gloo)"
        )


def shared_run_config(
    run_config: RunConfig, world: World, environ: Mapping[str, str] | None = None
) -> RunConfig:
    """The run config every rank of a torchrun world agrees on: its seed and run directory,
    derived from torchrun's rendezvous id when the command gave neither (each rank would
    otherwise draw its own). A single process keeps `run_config` as it is."""
    if not world.distributed:
        return run_config
    settings = run_config.run
    update: dict[str, object] = {"nproc": world.size}
    seed_given = "seed" in settings.model_fields_set
    if not seed_given or settings.run_dir is None:
        env = os.environ if environ is None else environ
        run_id = env.get(RUN_ID_VARIABLE, "none")
        if run_id == "none":
            raise ConfigError(
                "under torchrun every rank must use one seed and one run directory: pass "
                "--seed and --run-dir (or torchrun --rdzv-id, from which both are derived)"
            )
        digest = hashlib.sha256(run_id.encode()).digest()
        if not seed_given:
            update["seed"] = int.from_bytes(digest[:8], "big") % (2**31)
        if settings.run_dir is None:
            update["run_dir"] = settings.runs_root / f"{run_config.strategy}-{digest.hex()[:12]}"
    return dataclasses.replace(run_config, run=settings.model_copy(update=update))


def launch(nproc: int, args: Sequence[str], run_dir: Path) -> int:
    """Run `townlet ARGS` as `nproc` ranks on this machine; the exit code of the run.

    A rank that fails ends the run on every rank (torchrun stops the others); a rank that
    died without explaining itself (killed, crashed) is named here, with how to continue."""
    try:
        from torch.distributed import run as torchrun
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    except ImportError as exc:
        raise ConfigError(
            "--nproc starts the ranks with torchrun, which needs torch: pip install "
            "'townlet-core[ppo]' (or [bc])"
        ) from exc
    # its own error log repeats what `_report_failure` says in words
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    # torchrun would set 1 and warn; share the cores out instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    launch = ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0"]
    options = torchrun.parse_args([*launch, "--module", "townlet_core.cli"])  # type: ignore[no-untyped-call]
    # the ranks' own arguments, set here rather than parsed: torchrun's parser would take
    # an option of `townlet train` that abbreviates one of its own (--nproc) as its own
    options.training_script_args = list(args)
    try:
        torchrun.run(options)  # type: ignore[no-untyped-call]
    except ChildFailedError as failed:
        return _report_failure(failed.failures, nproc, run_dir)
    return 0


def _report_failure(failures: Mapping[int, object], nproc: int, run_dir: Path) -> int:
    """The run's exit code after a rank failed, naming the rank that failed first unless it
    explained itself (a townlet error, a failed acceptance) on stderr already."""
    codes = {rank: int(getattr(failure, "exitcode", 1)) for rank, failure in failures.items()}
    first = min(failures, key=lambda r: (_blame(codes[r]), getattr(failures[r], "timestamp", 0), r))
    code = codes[first]
    if code in EXPLAINED_EXIT_CODES:
        return code
    pid = getattr(failures[first], "pid", "?")
    how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
    print(
        f"townlet: error: rank {first} of {nproc} (pid {pid}) {how}; every other rank was "
        f"stopped. The run's last checkpoint in {run_dir} is intact: continue it with "
        f"'townlet train --resume {run_dir}'",
        file=sys.stderr,
    )
    return 2


def _blame(code: int) -> int:
    """How likely a rank's exit code is the cause rather than a consequence (lower: more):
    killed by a signal other than torchrun's SIGTERM, then any other crash, then an error
    it explained (one rank's error makes the others lose contact), then a stopped rank."""
    if code < 0 and code != -signal.SIGTERM:
        return 0
    if code not in (*EXPLAINED_EXIT_CODES, -signal.SIGTERM, LAUNCHER_GONE_EXIT_CODE):
        return 1
    if code in (1, 2):
        return 2
    return 3


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
