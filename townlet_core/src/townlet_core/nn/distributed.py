"""`Ranks`: what a data-parallel trainer needs from `torch.distributed`, in its words.

A trainer calls the same methods in one process and in many: with one rank every method
returns at once and changes nothing, so a plain run computes exactly what it always did.
Under torchrun (`townlet train --nproc N`) `Ranks.join` opens the process group (gloo on
the CPU, NCCL on CUDA, chosen from the device) and the methods become collectives: every
rank must call them in the same order, which is why a decision one rank could take alone
(stop early, a NaN, an evaluation's result) goes through `any` or `broadcast` first.

Each rank also watches its launcher: when the process that started it dies (a SIGKILL of
`townlet train --nproc`), torchrun cannot stop the ranks, so each rank stops itself within
a second instead of training on unwatched. The last checkpoint rank 0 wrote stays intact.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from townlet_core.contract.world import World
from townlet_core.errors import RankLostError
from townlet_core.runtime.launch import LAUNCHER_GONE_EXIT_CODE

#: How often a rank checks that its launcher is still alive (seconds).
LAUNCHER_POLL_SEC = 0.5
#: How long a collective waits for a rank that stopped answering before it fails.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


def rank_device(requested: str, world: World) -> str:
    """The device request of this rank: with CUDA each rank of a machine takes its own
    GPU (`cuda:LOCAL_RANK`) for `auto` and `cuda`; `cpu`, `mps` and `cuda:N` stay."""
    if world.distributed and requested in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank % torch.cuda.device_count()}"
    return requested


class Ranks:
    """The ranks of one run as this process sees them (one rank: every call is a no-op)."""

    def __init__(self, world: World, device: torch.device, run_dir: Path | None = None) -> None:
        self.world = world
        self.device = device
        self.run_dir = run_dir  # named in errors, for the resume command

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def size(self) -> int:
        return self.world.size

    @classmethod
    def join(cls, world: World, device: torch.device, run_dir: Path | None = None) -> Ranks:
        """This process's place in the run's process group (opened here when there are
        several ranks; the backend follows the device). `run_dir` is named in errors."""
        ranks = cls(world, device, run_dir)
        if not world.distributed:
            return ranks
        _watch_launcher(world)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():  # once per process: the stages of anneal share it
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(
                backend=backend,
                rank=world.rank,
                world_size=world.size,
                timeout=COLLECTIVE_TIMEOUT,
            )
            atexit.register(_leave)
        return ranks

    @property
    def backend(self) -> str | None:
        return str(dist.get_backend()) if self.world.distributed else None

    # ------------------------------------------------------------------ the collectives

    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks: one all-reduce of them all,
        flattened (a mini-batch's gradient then equals that of the ranks' rows together)."""
        if not self.world.distributed:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        with self._talking():
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.size
        offset = 0
        for grad in grads:
            count = grad.numel()
            grad.copy_(flat[offset : offset + count].view_as(grad))
            offset += count

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (float64)."""
        if not self.world.distributed:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        with self._talking():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor.cpu()]

    def max(self, value: int) -> int:
        """The largest `value` of any rank."""
        if not self.world.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        with self._talking():
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (so that all ranks take one decision)."""
        return self.max(int(flag)) > 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank (picklable values between this run's ranks)."""
        if not self.world.distributed:
            return value
        box = [value]
        with self._talking():
            dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def everyone(self, value: Any) -> list[Any]:
        """Every rank's `value` in rank order, on every rank (small picklable values)."""
        if not self.world.distributed:
            return [value]
        everyone: list[Any] = [None] * self.size
        with self._talking():
            dist.all_gather_object(everyone, value)
        return everyone

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's `value` in rank order, on rank 0 (None on the others)."""
        if not self.world.distributed:
            return [value]
        boxes: list[Any] | None = [None] * self.size if self.rank == 0 else None
        if self.device.type == "cuda":  # NCCL has no gather of objects: gather them all
            everyone = self.everyone(value)
            return everyone if self.rank == 0 else None
        with self._talking():
            dist.gather_object(value, boxes, dst=0)
        return boxes

    def barrier(self) -> None:
        """Wait until every rank is here: a strategy's run ends with one, after rank 0's
        last write, so that whatever runs next on any rank (a composing strategy's next
        stage, reading this one's checkpoint) finds rank 0's files complete."""
        if not self.world.distributed:
            return
        with self._talking():
            dist.barrier()

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers in `module` on every rank (a common start)."""
        if not self.world.distributed:
            return
        for tensor in [*module.parameters(), *module.buffers()]:
            with self._talking():
                dist.broadcast(tensor.data, src=0)

    def checksums(self, module: nn.Module) -> list[str]:
        """Every rank's digest of `module`'s parameters and buffers, on every rank: equal
        digests mean identical weights (and observation statistics)."""
        return [str(d) for d in self.everyone(module_digest(module))]

    @contextmanager
    def _talking(self) -> Iterator[None]:
        """A collective; a peer that vanished mid-way becomes a RankLostError that says so
        (torch's own message is a socket error deep in gloo or NCCL)."""
        try:
            yield
        except RuntimeError as exc:  # DistBackendError and the store's errors are RuntimeErrors
            raise RankLostError(
                f"lost contact with the other ranks of the run ({_first_sentence(exc)}): "
                "another rank stopped or was killed (its own error, if it had one, is printed "
                "by it); every rank stops. The run's last checkpoint is intact: continue it with "
                f"'townlet train --resume {self.run_dir or 'RUN_DIR'}'"
            ) from exc

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None


def module_digest(module: nn.Module) -> str:
    """A short hash of the bytes of every parameter and buffer, in order."""
    hasher = hashlib.blake2b(digest_size=8)
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        hasher.update(name.encode())
        hasher.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return hasher.hexdigest()


def _leave() -> None:
    """Leave the process group as the process exits (torch warns of one left open)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _watch_launcher(world: World) -> None:
    """Stop this rank when the process that started it is gone (see the module's text)."""
    launcher = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(LAUNCHER_POLL_SEC)
            if os.getppid() != launcher:
                print(
                    f"townlet: rank {world.rank} of {world.size}: its launcher (pid "
                    f"{launcher}) is gone; stopping. The run's last checkpoint is intact: "
                    "continue it with 'townlet train --resume RUN_DIR'",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(LAUNCHER_GONE_EXIT_CODE)

    threading.Thread(target=watch, name="townlet-launcher-watch", daemon=True).start()


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of a backend's error (gloo's go on with generic advice)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(". ")[0][:200]
