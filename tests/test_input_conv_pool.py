"""A stack's first convolution and max-pool as one layer: oneDNN's function and gradients.

Its forward and its weight and bias gradients come from kernels of its own
(``bench.fast.input_conv_pool``) and sum in another order, so they match oneDNN's convolution
and ``ChannelsLastMaxPool2x2`` up to float rounding.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.fast.input_conv_pool import InputConvMaxPool, _row, fits
from bench.fast.max_pool import ChannelsLastMaxPool2x2


def layer_pair(runs: int, per_run: int, padding: int, bias: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(runs, runs * per_run, 5, padding=padding, groups=runs, bias=bias)
    return conv.to(memory_format=torch.channels_last), ChannelsLastMaxPool2x2()


def assert_gradients_match(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    """The same gradients summed in another order: equal within 1e-5 of each one's largest value."""
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        scale = w.abs().max()
        assert (g - w).abs().max() <= 1e-5 * scale, f"{(g - w).abs().max()} against {scale}"


def grads(module_out: torch.Tensor, grad: torch.Tensor, conv: nn.Conv2d) -> list[torch.Tensor]:
    conv.weight.grad = None
    if conv.bias is not None:
        conv.bias.grad = None
    module_out.backward(grad)
    return [p.grad.clone() for p in conv.parameters()]


@pytest.mark.parametrize(("runs", "per_run", "padding", "height", "width", "batch", "bias"), [
    (4, 6, 0, 28, 28, 64, True),   # lenet-12's stack of four
    (4, 6, 2, 28, 28, 64, True),   # lenet5's: padded
    (3, 6, 0, 28, 28, 10, True),   # a short last batch, an odd number of runs
    (1, 3, 0, 16, 24, 5, False),   # one run, no bias, a map that is not square
    (2, 12, 1, 14, 18, 7, True),   # more channels per run, odd padding
])
def test_gradients_match_onednns_and_outputs_are_the_same(runs, per_run, padding, height, width, batch, bias):
    conv, pool = layer_pair(runs, per_run, padding, bias)
    fused = InputConvMaxPool(conv)
    torch.manual_seed(1)
    x = torch.randn(batch, runs, height, width).contiguous(memory_format=torch.channels_last)
    want_out = pool(conv(x))
    grad = torch.randn_like(want_out) * (torch.rand_like(want_out) > 0.4)  # ReLU's zeros, as in training
    want = grads(want_out, grad, conv)
    got_out = fused(x)
    assert got_out.grad_fn is not None and "InputConvMaxPool" in type(got_out.grad_fn).__name__
    # the same convolution summed in another order: the same maxima up to rounding (and, with
    # these fixed inputs, the same winners, so the gradients below are comparable)
    assert (got_out - want_out).abs().max() <= 1e-6 * want_out.abs().max()
    assert got_out.is_contiguous(memory_format=torch.channels_last)
    got = grads(got_out, grad, conv)
    assert len(got) == len(want) == (2 if bias else 1)
    assert_gradients_match(got, want)


def test_ties_and_nan_take_the_pools_winner():
    """Integer inputs and weights give exact sums, so equal maxima in many windows: the first
    one wins, as in aten's pool, and a NaN wins over any number."""
    conv, pool = layer_pair(2, 6, 0)
    with torch.no_grad():
        conv.weight.copy_(torch.randint(-1, 2, conv.weight.shape))
        conv.bias.copy_(torch.randint(-2, 3, conv.bias.shape))
    fused = InputConvMaxPool(conv)
    x = torch.randint(0, 2, (8, 2, 28, 28)).float()
    x[3, 1, 10, 7] = float("nan")
    x = x.contiguous(memory_format=torch.channels_last)
    want_out = pool(conv(x))
    got_out = fused(x)
    assert torch.equal(got_out.isnan(), want_out.isnan()) and got_out.isnan().any()
    assert torch.equal(got_out.nan_to_num(), want_out.nan_to_num())
    grad = torch.randn_like(want_out)
    for g, w in zip(grads(got_out, grad, conv), grads(want_out, grad, conv), strict=True):
        assert torch.equal(g.isnan(), w.isnan())
        assert torch.allclose(g.nan_to_num(), w.nan_to_num(), atol=1e-5 * w.nan_to_num().abs().max(), rtol=0)


def test_the_same_bits_every_time_whatever_ran_between():
    """Buffers kept between steps must not carry anything from one step, or batch size, to the next."""
    conv, _ = layer_pair(4, 6, 2)
    fused = InputConvMaxPool(conv)
    x = torch.randn(64, 4, 28, 28).contiguous(memory_format=torch.channels_last)
    out = fused(x)
    grad = torch.randn_like(out)
    first = grads(out, grad, conv)
    other = torch.randn(64, 4, 28, 28).contiguous(memory_format=torch.channels_last) * 100
    grads(fused(other), torch.randn_like(out), conv)
    grads(fused(other[:9]), torch.randn_like(out[:9]), conv)
    again = grads(fused(x), grad, conv)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_what_it_does_not_compute_runs_as_before():
    """An input that needs its gradient, no grad mode and autocast take the plain convolution and pool."""
    conv, pool = layer_pair(2, 6, 0)
    fused = InputConvMaxPool(conv)
    x = torch.randn(4, 2, 28, 28).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = fused(x)
    assert "InputConvMaxPool" not in type(out.grad_fn).__name__
    out.sum().backward()
    want_x = x.grad.clone()
    x.grad = None
    pool(conv(x)).sum().backward()
    assert torch.equal(x.grad, want_x)
    with torch.no_grad():
        assert fused(x).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused(x.detach()).dtype == torch.bfloat16


def test_only_layers_it_computes_are_fused():
    assert fits(nn.Conv2d(4, 24, 5, groups=4))
    assert fits(nn.Conv2d(4, 24, 5, padding=2, groups=4))
    assert not fits(nn.Conv2d(4, 24, 3, groups=4))           # another kernel size
    assert not fits(nn.Conv2d(12, 24, 5, groups=4))          # three input channels per run
    assert not fits(nn.Conv2d(4, 16, 5, groups=4))           # four channels per run, not threes
    assert not fits(nn.Conv2d(4, 24, 5, stride=2, groups=4))
    assert not fits(nn.Conv2d(4, 24, 5, dilation=2, groups=4))
    assert not fits(nn.Conv2d(4, 24, 5, padding=(1, 2), groups=4))


def test_rows_never_a_power_of_two_lines_apart():
    for length, itemsize in [(16384, 4), (12544, 4), (16384, 1), (1, 4), (1000, 1)]:
        row = _row(length, itemsize)
        assert row >= length
        assert (row * itemsize) % 64 == 0 and (row * itemsize // 64) % 2 == 1
