"""ReLU followed by a max-pool, run as max-pool followed by ReLU.

The two orders are the same function with the same gradients, bit for bit: ReLU is
monotone, so it commutes with max, and where they could disagree (every value of a window
<= 0, where the orders may route the gradient to different positions) ReLU's gradient is
zero either way.  Pooling first runs ReLU and its backward on a quarter of the values.
Architectures are written in textbook order; the rewrite happens when a run builds its model.
"""

from __future__ import annotations

from torch import nn


def pool_before_relu(model: nn.Module) -> int:
    """Swap every ``ReLU, MaxPool2d`` pair of consecutive ``nn.Sequential`` children; returns how many."""
    swapped = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if type(seq[i]) is nn.ReLU and type(seq[i + 1]) is nn.MaxPool2d:
                seq[i], seq[i + 1] = seq[i + 1], seq[i]
                swapped += 1
    return swapped
