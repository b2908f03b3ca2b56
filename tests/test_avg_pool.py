"""The broadcast 2x2 avg-pool backward (bench/avg_pool.py) is aten's, bit for bit.

The module takes its path on CUDA only; the function itself is device-independent arithmetic,
so its bits are checked here against aten's CPU kernel, and against aten's CUDA kernel in
tests/test_cuda.py wherever a GPU is present.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.fast.avg_pool import AvgPool2x2, BroadcastAvgPool2x2, use_broadcast_avg_pool
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset
from bench.datasets import prepare_data
from bench.train import build_training

# Gradients full of signed zeros, infinities and NaN: aten's 0 + g / 4 turns -0.0 into +0.0.
NASTY = torch.tensor([-float("inf"), -1.0, -0.0, 0.0, 1e-45, 3.0, float("inf"), float("nan")])


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)  # NaN == NaN and -0.0 != 0.0, as bits


def both_gradients(x: torch.Tensor, grad: torch.Tensor):
    ours_x, aten_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, aten = AvgPool2x2.apply(ours_x), F.avg_pool2d(aten_x, 2)
    assert torch.equal(bits(ours), bits(aten))
    ours.backward(grad)
    aten.backward(grad)
    return ours_x.grad, aten_x.grad


@pytest.mark.parametrize("shape", [(64, 16, 28, 28), (3, 5, 2, 6), (1, 1, 4, 2)])
@pytest.mark.parametrize("values", ["nasty", "normal"])
def test_gradient_is_atens_bit_for_bit(shape, values):
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=generator)
    pooled = (shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    grad = (NASTY[torch.randint(len(NASTY), pooled, generator=generator)] if values == "nasty"
            else torch.randn(pooled, generator=generator))
    ours, aten = both_gradients(x, grad)
    assert ours.shape == aten.shape and ours.stride() == aten.stride()
    assert torch.equal(bits(ours), bits(aten))


def test_a_negative_zero_gradient_comes_back_positive_as_atens():
    ours, aten = both_gradients(torch.zeros(1, 1, 2, 2), torch.tensor([[[[-0.0]]]]))
    assert torch.equal(bits(ours), bits(aten)) and not ours.signbit().any()


# Off the CPU case, each case differs from the path's own only in what it names, so each
# needs a GPU to mean anything (on CPU every tensor falls back for being on the CPU).
ON_GPU = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present")]


@pytest.mark.parametrize("case", ["cpu", *(pytest.param(case, marks=ON_GPU) for case in
                                           ("odd", "no-grad", "inference", "double", "channels_last"))])
def test_what_the_path_does_not_handle_runs_atens_pool(case):
    x = torch.randn(2, 4, 6, 6)
    if case == "odd":
        x = torch.randn(2, 4, 9, 9)
    elif case == "double":
        x = x.double()
    elif case == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if case != "cpu":
        x = x.cuda()
    x.requires_grad_(case != "no-grad")
    with torch.inference_mode(case == "inference"):
        out = BroadcastAvgPool2x2()(x)
    assert out.grad_fn is None or type(out.grad_fn).__name__ == "AvgPool2DBackward0"
    assert torch.equal(out, F.avg_pool2d(x, 2))


def test_only_plain_2x2_avg_pools_are_swapped():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.AvgPool2d(2), nn.AvgPool2d(3), nn.AvgPool2d(2, stride=1),
        nn.AvgPool2d(2, padding=1), nn.AvgPool2d(2, ceil_mode=True), nn.AvgPool2d(2, divisor_override=3),
        nn.AvgPool2d((2, 2), stride=(2, 2)), nn.Sequential(nn.AvgPool2d(kernel_size=2)), nn.MaxPool2d(2),
    )
    keys = list(model.state_dict())
    assert use_broadcast_avg_pool(model) == 3
    swapped = [i for i, m in enumerate(model) if isinstance(m, BroadcastAvgPool2x2)]
    assert swapped == [1, 7] and isinstance(model[8][0], BroadcastAvgPool2x2)
    assert [type(model[i]) for i in (2, 3, 4, 5, 6)] == [nn.AvgPool2d] * 5
    assert list(model.state_dict()) == keys


def test_cpu_training_keeps_atens_avg_pool():
    data = prepare_data(load_dataset("digits", DataSearch(download=False)), 0.0, "cpu")
    model = build_training(RunConfig(arch="convnet", dataset="digits"), data).model
    assert not any(isinstance(m, BroadcastAvgPool2x2) for m in model.modules())
    assert sum(type(m) is nn.AvgPool2d for m in model.modules()) == 2
