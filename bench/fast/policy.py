"""The speed-ups one run gets, chosen by a fixed rule on its config and model.

``bench.train.build_training`` consults ``speedups(cfg)`` once (through ``run_policy``); each method answers one
question the plain loop would otherwise answer the tutorial's way (``bench.train.PlainPolicy``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

from ..config import FUSED_OPTIMIZERS, RunConfig
from .avg_pool import use_broadcast_avg_pool
from .cuda_graph import GraphedSteps, graph_refusal
from .kernels import kernel_refusal, use_stack_kernels
from .memory_format import choose_memory_format, keep_gradients_channels_last
from .relu_order import pool_before_relu

# oneDNN splits its reductions by thread count, so a CPU run's bits depend on it: every CPU
# run trains with one thread, and cores are used by one worker process each instead.
CPU_RUN_THREADS = 1
# Evaluation batches: on CPU small enough that activations stay in cache, on a GPU large
# enough to fill it.  The size can move logits in the last bits, never a prediction.
CPU_EVAL_BATCH = 256
GPU_EVAL_BATCH = 1000


class Speedups:
    """What ``bench.fast`` changes in one run; the same interface as ``bench.train.PlainPolicy``."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)

    @property
    def eval_batch(self) -> int:
        return CPU_EVAL_BATCH if self.device.type == "cpu" else GPU_EVAL_BATCH

    @property
    def optimizer_options(self) -> dict[str, bool]:
        if self.cfg.optimizer_impl == "fused" and self.cfg.optimizer in FUSED_OPTIMIZERS:
            return {"fused": True}
        return {"foreach": True}  # the same bits as torch's default loop

    def threads(self) -> AbstractContextManager[None]:
        """Run the body with the torch threads a run uses (``run_threads``)."""
        return run_threads(self.device)

    def memory_format(self, model: nn.Module) -> torch.memory_format:
        return choose_memory_format(self.cfg, model)

    def prepare(self, model: nn.Module, memory_format: torch.memory_format) -> None:
        """Build-time rewrites of a model already on its device and in its layout."""
        pool_before_relu(model)
        if self.cfg.compile:
            return  # compiled code picks its own layouts and writes its own backward
        if memory_format == torch.channels_last:
            keep_gradients_channels_last(model)
        if self.device.type == "cuda":
            use_broadcast_avg_pool(model)

    def prepare_stack(self, model: nn.Module, memory_format: torch.memory_format) -> None:
        """``prepare`` for a stack of seeds, which may also sum in orders no solo run does."""
        self.prepare(model, memory_format)
        if (self.device.type == "cpu" and memory_format == torch.channels_last and not self.cfg.compile
                and not self.cfg.aten_stack):
            use_stack_kernels(model)

    def stack_kernel_refusal(self) -> str | None:
        """Why a CPU stack of this run would train on aten's kernels rather than bench.fast's, or None."""
        return kernel_refusal() if self.device.type == "cpu" else None

    def graph_refusal(self) -> str | None:
        """Why this run's steps are not captured as a CUDA graph, or None when they are."""
        return graph_refusal(self.cfg)

    def graph(self, optimizers: list[torch.optim.Optimizer], stacked_runs: int = 0) -> GraphedSteps | None:
        """Replayed CUDA-graph steps for a run with these optimizers (or a stack of
        ``stacked_runs`` seeds with one), or None to step eagerly."""
        if graph_refusal(self.cfg) is not None:
            return None
        return GraphedSteps(optimizers, self.cfg.batch_size, self.device, stacked_runs)


@contextmanager
def run_threads(device: str | torch.device) -> Iterator[None]:
    """Run the body with ``CPU_RUN_THREADS`` torch threads on CPU; restore them after."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_RUN_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def speedups(cfg: RunConfig) -> Speedups:
    return Speedups(cfg)
