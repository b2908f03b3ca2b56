"""bench.fast's numba kernels, built in one place: where they cannot be, runs use aten's.

numba is an optional extra (``pip install 'cnnbench[numba]'``).  Only a CPU stack of seeds
uses these kernels (``Speedups.prepare_stack``), and they sum in another order than aten,
so a stack's bits depend on them: ``bench.planner`` asks ``kernel_refusal()`` once per grid
and marks a CPU stack that trains without them (``RunConfig.aten_stack``), which gives its
runs ids of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import BenchError, one_line

NUMBA_EXTRA = "pip install 'cnnbench[numba]'"
_built: list[tuple[Callable[[nn.Module], int], ...] | str] = []  # the rewrites, or why there are none


def _build() -> tuple[Callable[[nn.Module], int], ...] | str:
    if not _built:
        try:  # compiles the kernels (or loads them from numba's cache) on first import
            from .conv_pool import use_conv_max_pool
            from .input_conv_pool import use_input_conv_max_pool
            from .max_pool import use_channels_last_max_pool
        except ModuleNotFoundError as exc:
            if exc.name not in ("numba", "llvmlite"):
                raise
            _built.append(f"numba is not installed ({NUMBA_EXTRA})")
        except Exception as exc:  # noqa: BLE001 - numba's compilation errors are plain Exceptions
            _built.append(f"numba could not build them ({one_line(exc)})")
        else:
            _built.append((use_channels_last_max_pool, use_input_conv_max_pool, use_conv_max_pool))
    return _built[0]


def kernel_refusal() -> str | None:
    """Why the kernels cannot be used in this process, or None once they are built."""
    built = _build()
    return built if isinstance(built, str) else None


def use_stack_kernels(model: nn.Module) -> None:
    """A CPU stack's 2x2 max-pools, and the convolutions before them, computed by the kernels."""
    built = _build()
    if isinstance(built, str):
        raise BenchError(f"this stacked run's bits are bench.fast's numba kernels', which cannot be built here: "
                         f"{built}")
    use_channels_last_max_pool, use_input_conv_max_pool, use_conv_max_pool = built
    use_channels_last_max_pool(model)  # the fused layers take a conv and this pool after it
    use_input_conv_max_pool(model)  # the first layer: its input needs no gradient
    use_conv_max_pool(model)
