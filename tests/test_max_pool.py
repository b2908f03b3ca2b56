"""The channels_last 2x2 max-pool (bench/max_pool.py) is aten's max-pool, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset
from bench.fast.max_pool import ChannelsLastMaxPool2x2, use_channels_last_max_pool
from bench.datasets import prepare_data
from bench.train import build_training

# Values that make ties, NaN winners, all -inf windows and signed-zero gradients common.
NASTY = torch.tensor([-float("inf"), -1.0, -0.0, 0.0, 1.0, float("inf"), float("nan")])


def nasty(shape, generator) -> torch.Tensor:
    return NASTY[torch.randint(len(NASTY), shape, generator=generator)]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)  # NaN == NaN and -0.0 != 0.0, as bits


def pool_both(x: torch.Tensor):
    """(ours, aten's) forward outputs on two leaf copies of ``x``, and the two leaves."""
    ours_x, aten_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    return ChannelsLastMaxPool2x2()(ours_x), nn.MaxPool2d(2)(aten_x), ours_x, aten_x


@pytest.mark.parametrize("shape", [(64, 6, 24, 24), (3, 5, 9, 9), (2, 16, 7, 8), (2, 5, 3, 2), (1, 3, 3, 5)])
@pytest.mark.parametrize("values", ["nasty", "normal"])
def test_output_and_gradient_are_atens_bit_for_bit(shape, values):
    generator = torch.Generator().manual_seed(sum(shape))
    x = nasty(shape, generator) if values == "nasty" else torch.randn(shape, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    ours, aten, ours_x, aten_x = pool_both(x)
    assert type(ours.grad_fn).__name__ == "_MaxPool2x2Backward"  # the kernels ran, not a fallback
    assert ours.shape == aten.shape and ours.stride() == aten.stride()
    assert torch.equal(bits(ours), bits(aten))

    grad = nasty(aten.shape, generator) if values == "nasty" else torch.randn(aten.shape, generator=generator)
    for g in (grad.contiguous(memory_format=torch.channels_last), grad.contiguous()):  # either layout
        ours_x.grad = aten_x.grad = None
        ours.backward(g, retain_graph=True)
        aten.backward(g, retain_graph=True)
        assert ours_x.grad.stride() == aten_x.grad.stride()
        assert torch.equal(bits(ours_x.grad), bits(aten_x.grad))


def test_ties_go_to_the_first_maximum_and_nan_wins():
    x = torch.tensor([[[[1.0, 1.0], [1.0, 0.5]]], [[[float("nan"), 2.0], [float("nan"), 3.0]]]])
    ours, _, ours_x, _ = pool_both(x.contiguous(memory_format=torch.channels_last))
    ours.sum().backward()
    assert ours_x.grad[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]  # first of the equal maxima
    assert ours[1].isnan().all()
    assert ours_x.grad[1, 0].tolist() == [[0.0, 0.0], [1.0, 0.0]]  # as aten: the last NaN


@pytest.mark.parametrize("case", ["nchw", "one-channel", "bfloat16", "double"])
def test_what_the_kernels_do_not_handle_runs_atens_pool(case):
    x = torch.randn(2, 4, 6, 6)
    if case == "nchw":
        x = x.contiguous()  # 4 channels and 6x6: not channels_last-contiguous as well
    elif case == "one-channel":  # both layouts at once: aten picks the gradient's strides
        x = x[:, :1].contiguous(memory_format=torch.channels_last)
    else:
        x = x.to({"bfloat16": torch.bfloat16, "double": torch.float64}[case]).contiguous(
            memory_format=torch.channels_last)
    ours, aten, _, _ = pool_both(x)
    assert type(ours.grad_fn).__name__ == type(aten.grad_fn).__name__ != "_MaxPool2x2Backward"
    assert torch.equal(ours, aten)


def test_evaluation_under_inference_mode():
    x = torch.randn(64, 12, 12, 12).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.equal(ChannelsLastMaxPool2x2()(x), nn.MaxPool2d(2)(x))


def test_only_plain_2x2_max_pools_are_swapped():
    plain = nn.MaxPool2d(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), plain, nn.MaxPool2d(3), nn.MaxPool2d(2, stride=1), nn.MaxPool2d(2, padding=1),
        nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d((2, 2), stride=(2, 2)),
        nn.Sequential(nn.MaxPool2d(kernel_size=2)), nn.AvgPool2d(2),
    )
    keys = list(model.state_dict())
    assert use_channels_last_max_pool(model) == 3
    swapped = [i for i, m in enumerate(model) if isinstance(m, ChannelsLastMaxPool2x2)]
    assert swapped == [1, 6] and isinstance(model[7][0], ChannelsLastMaxPool2x2)
    assert [type(model[i]) for i in (2, 3, 4, 5)] == [nn.MaxPool2d] * 4
    assert list(model.state_dict()) == keys


@pytest.fixture(scope="module")
def digits():
    return prepare_data(load_dataset("digits", DataSearch(download=False)), 0.0, "cpu")


@pytest.mark.parametrize(("memory_format", "compile_", "aten_stack", "expected"), [
    ("auto", False, False, 2), ("channels_last", False, False, 2), ("contiguous", False, False, 0),
    ("auto", True, False, 0), ("auto", False, True, 0)])
def test_only_a_cpu_stack_in_channels_last_pools_with_the_kernels(memory_format, compile_, aten_stack, expected,
                                                                   digits):
    """Solo runs pool with aten's kernel (the bits are the same, the speed-up measured too small
    to keep, docs/performance.md); a CPU stack's fused layers pool with this one."""
    from bench.drivers.stacked_training import StackSteps

    cfg = RunConfig(arch="lenet-12", dataset="digits", memory_format=memory_format, compile=compile_)
    assert not any(isinstance(m, ChannelsLastMaxPool2x2) for m in build_training(cfg, digits).model.modules())
    stack = StackSteps([cfg.replace(seed=s, stacked=True, aten_stack=aten_stack) for s in (0, 1)], digits)
    assert sum(isinstance(m, ChannelsLastMaxPool2x2) for m in stack.model.modules()) == expected


def test_a_stack_planned_with_the_kernels_does_not_train_without_them(monkeypatch, digits):
    from bench.drivers.stacked_training import StackSteps
    from bench.errors import BenchError
    from bench.fast import kernels

    monkeypatch.setattr(kernels, "_built", ["numba is not installed"])
    cfgs = [RunConfig(arch="lenet-12", dataset="digits", seed=s, stacked=True) for s in (0, 1)]
    with pytest.raises(BenchError, match="bits are bench.fast's numba kernels', which cannot be built here"):
        StackSteps(cfgs, digits)  # its id says kernels' bits: aten's would be another run's
    StackSteps([c.replace(aten_stack=True) for c in cfgs], digits)
