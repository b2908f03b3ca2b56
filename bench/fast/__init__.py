"""Speed tricks, and the one policy that chooses them for a run.

``bench.train`` is the plain tutorial loop; it asks ``run_policy(cfg)`` once what to change
for speed, which is ``speedups(cfg)`` from here.  Every trick here gives the plain loop's
results (bit for bit, tested) or is a recorded part of the run's config; without this
package (``CNNBENCH_PLAIN=1``: ``bench.train.PlainPolicy``) the harness is still correct,
only slower.  Nothing here imports the loop; the drivers that step several runs at once
live in ``bench.drivers``.

- ``policy``: which tricks apply to a run, by a fixed rule on its config and model.
- ``memory_format``: channels_last activations on CPU, and gradients kept in that layout.
- ``relu_order``: ReLU -> max-pool rewritten as max-pool -> ReLU at build time.
- ``avg_pool`` / ``pool_swap``: a CUDA 2x2 average pool with a cheaper backward, aten's bits.
- ``kernels``: the one place the numba kernels below are built (the optional ``cnnbench[numba]``);
  where they cannot be, a CPU stack trains on aten's, marked ``aten_stack`` in its config.
- ``max_pool``: a channels_last 2x2 max-pool, aten's bits; a CPU stack's fused layers pool with it.
- ``cuda_graph``: a CUDA run's full batches replay one captured graph.
- ``input_conv_pool``: a CPU stack's first convolution and max-pool, computed by kernels of their own.
- ``conv_pool``: a CPU stack's second 5x5 convolution and max-pool, with a backward of their own.
- ``fused_conv_pool``: what those two fused layers share: the fallback, buffers, the fusing.

docs/performance.md has the measurements behind each choice.
"""

from .policy import Speedups, speedups

__all__ = ["Speedups", "speedups"]
