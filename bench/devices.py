"""Turning ``--device`` into a concrete torch device, with errors a user can act on."""

from __future__ import annotations

import torch

from .errors import BenchError


def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present else ``cpu``; validate the rest.

    Plain ``cuda`` stays ``cuda``: the executor decides which GPU a worker uses (one per
    worker on multi-GPU machines), so that choice does not change a run's identity.
    """
    requested = requested.strip().lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BenchError(
                f"--device {requested}: CUDA is not available on this machine "
                "(no GPU or a CPU-only torch); use --device cpu or auto"
            )
        if requested == "cuda":
            return "cuda"
        index_text = requested.partition(":")[2]
        if not index_text.isdigit():
            raise BenchError(f"--device {requested}: expected cuda:N with N a GPU index")
        index, count = int(index_text), torch.cuda.device_count()
        if index >= count:
            raise BenchError(
                f"--device {requested}: this machine has {count} GPU(s), "
                f"valid indices are 0..{count - 1}"
            )
        return f"cuda:{index}"
    raise BenchError(f"unknown device {requested!r}; use auto, cpu, cuda or cuda:N")


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def synchronize(device: str) -> None:
    """Wait for queued GPU work so wall-clock timings measure it (a no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))
