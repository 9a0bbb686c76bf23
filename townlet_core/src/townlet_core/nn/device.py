"""Choose the torch device: `auto` takes the CUDA device with the most free memory, else
the CPU; an explicit device is honoured if it exists (`check_device_available` says so
before a run starts). Nothing global is changed (no
`set_device`, no cuDNN benchmark switch), unlike the original trainer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from townlet_core.errors import ConfigError


def _cuda_free_memory() -> list[tuple[int, int, int]]:
    """(index, free bytes, total bytes) of each visible CUDA device."""
    devices = []
    for index in range(torch.cuda.device_count()):
        try:
            free, total = torch.cuda.mem_get_info(index)
        except RuntimeError:
            free, total = 0, 0
        devices.append((index, int(free), int(total)))
    return devices


def cuda_device_count() -> int:
    """How many CUDA devices this process sees (0 without CUDA or with a CPU-only build)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device_available(name: str) -> None:
    """Raise ConfigError unless device `name` (auto, cpu, cuda, cuda:N, mps) exists here.

    Called before a run directory is created, so `--device cuda` on a machine without CUDA
    (or `cuda:7` with one GPU, or `mps` off Apple silicon) is refused up front, by name.
    `auto` and `cpu` always exist.
    """
    if name in ("auto", "cpu"):
        return
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: CUDA is not available here (torch {torch.__version__}"
                f"{'' if torch.version.cuda else ', a CPU-only build'}); use --device cpu or auto"
            )
        index = _cuda_index(name)
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"--device {name}: only {count} CUDA device(s) here (cuda:0 to "
                f"cuda:{count - 1}); use one of those, or --device auto"
            )
        return
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("--device mps: Apple MPS is not available here; use cpu or auto")
        return
    raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def _cuda_index(name: str) -> int:
    """N of `cuda:N`; plain `cuda` is torch's current device (CUDA must be available)."""
    return int(name.partition(":")[2] or torch.cuda.current_device())


def select_device(requested: str) -> tuple[torch.device, str]:
    """The device for `requested` (auto, cpu, cuda, cuda:N, mps) and a line describing it."""
    check_device_available(requested)
    if requested == "cpu":
        return torch.device("cpu"), "cpu"
    if requested == "auto":
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            index, free, total = max(_cuda_free_memory(), key=lambda d: d[1])
            return torch.device(f"cuda:{index}"), _describe_cuda(index, free, total)
        return torch.device("cpu"), "cpu (no CUDA device available)"
    if requested.startswith("cuda"):
        index = _cuda_index(requested)
        free, total = torch.cuda.mem_get_info(index)
        return torch.device(f"cuda:{index}"), _describe_cuda(index, int(free), int(total))
    return torch.device("mps"), "mps"


def _describe_cuda(index: int, free: int, total: int) -> str:
    name = torch.cuda.get_device_name(index)
    return f"cuda:{index} ({name}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free)"


def device_name(device: torch.device) -> str:
    """`cuda:0`, `cpu`: the form result DTOs record."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else 0}"
    return device.type


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Use `count` intra-op CPU threads inside the block, then restore torch's setting.

    Small policy networks gain nothing from several threads, and on a busy machine torch's
    spinning worker threads slow every step down severely; training therefore defaults to
    one. None leaves torch's own setting alone.
    """
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
