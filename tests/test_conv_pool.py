"""A stack's second convolution and max-pool as one layer: the same function, oneDNN's gradients.

The forward is the convolution and ``ChannelsLastMaxPool2x2`` as before, bit for bit; the
input, weight and bias gradients come from a kernel of its own (``bench.fast.conv_pool``) and
sum in another order, so they match oneDNN's up to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from architectures import get_spec
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset, prepare_data
from bench.fast import speedups
from bench.fast.conv_pool import SLACK, ConvMaxPool, _from_blocks, _nhwc, _to_blocks, fits, use_conv_max_pool
from bench.fast.fused_conv_pool import FusedConvMaxPool
from bench.fast.input_conv_pool import InputConvMaxPool, use_input_conv_max_pool
from bench.fast.max_pool import ChannelsLastMaxPool2x2
from bench.drivers.stacked_training import StackSteps
from bench.train import build_training
from test_input_conv_pool import assert_gradients_match


def layer_pair(runs: int, per_in: int, per_out: int, bias: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(runs * per_in, runs * per_out, 5, groups=runs, bias=bias)
    return conv.to(memory_format=torch.channels_last), ChannelsLastMaxPool2x2()


def grads(out: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, conv: nn.Conv2d) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, [x, *conv.parameters()], grad))


@pytest.mark.parametrize(("runs", "per_in", "per_out", "height", "width", "batch", "bias"), [
    (4, 6, 12, 12, 12, 64, True),   # lenet-12's stack of four
    (4, 6, 16, 14, 14, 64, True),   # lenet5's
    (4, 6, 16, 13, 13, 64, True),   # lenet's: a 9x9 map, whose last row and column no window takes
    (3, 5, 7, 10, 12, 9, False),    # a short batch, no bias, a map that is not square
    (1, 4, 3, 9, 9, 1, True),       # one run, one image: every layout's tail
])
def test_gradients_match_onednns_and_outputs_are_the_same(runs, per_in, per_out, height, width, batch, bias):
    conv, pool = layer_pair(runs, per_in, per_out, bias)
    fused = ConvMaxPool(conv)
    torch.manual_seed(1)
    x = torch.randn(batch, runs * per_in, height, width).contiguous(memory_format=torch.channels_last)
    x = x.relu().requires_grad_()  # a ReLU's output, as in training
    want_out = pool(conv(x))
    grad = torch.randn_like(want_out) * (torch.rand_like(want_out) > 0.2)  # the next ReLU's zeros
    want = grads(want_out, grad, x, conv)
    got_out = fused(x)
    assert "ConvMaxPool" in type(got_out.grad_fn).__name__
    assert torch.equal(got_out, want_out)
    assert got_out.is_contiguous(memory_format=torch.channels_last)
    got = grads(got_out, grad, x, conv)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert len(got) == len(want) == (3 if bias else 2)
    assert_gradients_match(got, want)


def test_ties_take_the_pools_winner():
    """Integer maps make equal maxima in many windows: the gradient goes where the pool's code says."""
    conv, pool = layer_pair(2, 6, 12)
    with torch.no_grad():
        conv.weight.copy_(torch.randint(-1, 2, conv.weight.shape))
        conv.bias.zero_()
    fused = ConvMaxPool(conv)
    x = torch.randint(0, 2, (8, 12, 12, 12)).float().contiguous(memory_format=torch.channels_last).requires_grad_()
    out = pool(conv(x))
    grad = torch.randn_like(out)
    want = grads(out, grad, x, conv)
    got = grads(fused(x), grad, x, conv)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5 * w.abs().max(), rtol=0)


def test_a_non_finite_gradient_reaches_what_onednns_reaches_and_nothing_else():
    """Vectors run past a filter row: the lanes beyond it must not take an inf times zero."""
    conv, pool = layer_pair(2, 6, 12)
    fused = ConvMaxPool(conv)
    x = torch.randn(2, 12, 12, 12).relu().contiguous(memory_format=torch.channels_last).requires_grad_()
    out = pool(conv(x))
    grad = torch.zeros_like(out)
    grad[1, 3, 2, 1] = float("inf")
    want = grads(out, grad, x, conv)
    got = grads(fused(x), grad, x, conv)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g.isfinite(), w.isfinite()) and torch.equal(g.isnan(), w.isnan())
        assert torch.allclose(g[w.isfinite()], w[w.isfinite()])


def test_the_same_bits_every_time_whatever_ran_between():
    """Buffers kept between steps must not carry anything from one step, or batch size, to the next."""
    conv, _ = layer_pair(4, 6, 12)
    fused = ConvMaxPool(conv)
    x = torch.randn(64, 24, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = fused(x)
    grad = torch.randn_like(out)
    first = grads(out, grad, x, conv)
    other = (torch.randn(64, 24, 12, 12) * 100).contiguous(memory_format=torch.channels_last).requires_grad_()
    grads(fused(other), torch.randn_like(out), other, conv)
    short = other[:9].detach().requires_grad_()
    grads(fused(short), torch.randn_like(out[:9]), short, conv)
    again = grads(fused(x), grad, x, conv)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_what_it_does_not_compute_runs_as_before():
    """No grad mode, autocast and NCHW input take the plain convolution and pool."""
    conv, pool = layer_pair(2, 6, 12)
    fused = ConvMaxPool(conv)
    x = torch.randn(4, 12, 12, 12)
    out = fused(x.requires_grad_())  # NCHW
    assert "ConvMaxPool" not in type(out.grad_fn).__name__
    assert torch.equal(out, pool(conv(x)))
    x = x.detach().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert fused(x).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused(x.requires_grad_()).dtype == torch.bfloat16


@pytest.mark.parametrize(("runs", "per_in", "batch", "height", "width"), [(4, 6, 3, 12, 12), (3, 5, 2, 7, 9),
                                                                          (1, 4, 1, 5, 6), (2, 6, 1, 1, 1)])
def test_the_layout_round_trips(runs, per_in, batch, height, width):
    x = torch.randn(batch, runs * per_in, height, width).contiguous(memory_format=torch.channels_last)
    block = np.full(x.numel() + SLACK, np.nan, np.float32)
    _to_blocks(_nhwc(x), per_in, block)
    by_group = x.permute(0, 2, 3, 1).reshape(batch, height, width, runs, per_in).permute(3, 0, 1, 2, 4)
    assert np.array_equal(block[:x.numel()], by_group.reshape(-1).numpy())
    back = torch.full_like(x, float("nan"))
    _from_blocks(block, per_in, _nhwc(back))
    assert torch.equal(back, x)


def test_only_layers_it_computes_are_fused():
    assert fits(nn.Conv2d(24, 48, 5, groups=4))
    assert fits(nn.Conv2d(16, 8, 5, groups=4))              # four input channels per run
    assert not fits(nn.Conv2d(12, 48, 5, groups=4))         # three: a filter row fills one vector
    assert not fits(nn.Conv2d(28, 48, 5, groups=4))         # seven: three vectors
    assert not fits(nn.Conv2d(24, 48, 3, groups=4))         # another kernel size
    assert not fits(nn.Conv2d(24, 48, 5, padding=2, groups=4))
    assert not fits(nn.Conv2d(24, 48, 5, stride=2, groups=4))
    assert not fits(nn.Conv2d(24, 48, 5, dilation=2, groups=4))


@pytest.mark.parametrize(("use", "layer", "in_channels"), [
    (use_input_conv_max_pool, InputConvMaxPool, 2),  # one input channel per run
    (use_conv_max_pool, ConvMaxPool, 12),  # six
])
def test_a_fitting_convolution_and_the_channels_last_pool_after_it_become_one_layer(use, layer, in_channels):
    seq = nn.Sequential(nn.Conv2d(in_channels, 12, 5, groups=2), ChannelsLastMaxPool2x2(), nn.ReLU(),
                        nn.Conv2d(in_channels, 12, 5, groups=2), nn.MaxPool2d(2))  # aten's pool: left alone
    keys = list(seq.state_dict())
    assert use(seq) == 1
    assert [type(m) for m in seq] == [layer, nn.Identity, nn.ReLU, nn.Conv2d, nn.MaxPool2d]
    assert list(seq.state_dict()) == keys  # the convolution's parameters, under their names


@pytest.fixture(scope="module")
def digits():
    return prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")


@pytest.mark.parametrize(("arch", "first", "second"), [("lenet-12", 1, 1), ("lenet5", 1, 1), ("lenet", 0, 1)])
def test_a_cpu_stack_fuses_its_lenet_layers_and_a_solo_run_never(arch, first, second, digits):
    """lenet's 3x3 first layer is not one ``InputConvMaxPool`` computes; every LeNet's second is."""
    cfgs = [RunConfig(arch=arch, dataset="digits", seed=s, stacked=True) for s in range(4)]
    with speedups(cfgs[0]).threads():
        steps = StackSteps(cfgs, digits)
        solo = build_training(cfgs[0].replace(stacked=False), digits).model
    assert sum(isinstance(m, InputConvMaxPool) for m in steps.model.modules()) == first
    assert sum(isinstance(m, ConvMaxPool) for m in steps.model.modules()) == second
    assert not any(isinstance(m, FusedConvMaxPool) for m in solo.modules())
    # the stack's parameters keep the names each run's model has, which unstacking relies on
    plain = get_spec(arch).build(in_channels=1, num_classes=10, image_size=28)
    assert [n for n, _ in steps.model.body.named_parameters()] == [n for n, _ in plain.named_parameters()]
