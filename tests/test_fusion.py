"""The training path's fusions change no bit: outputs and gradients equal the unfused layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from architectures import build_model
from bench.fusion import ReLUAvgPool2d, fuse_for_training

FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def _pair_and_fused(x: torch.Tensor, grad: torch.Tensor):
    """(output, input gradient) of ReLU -> AvgPool2d(2) and of the fused module."""
    results = []
    for layers in (nn.Sequential(nn.ReLU(inplace=True), nn.AvgPool2d(2)), ReLUAvgPool2d()):
        leaf = x.clone().requires_grad_()
        out = layers(leaf * 1.0)  # an in-place ReLU needs a non-leaf input
        out.backward(grad)
        results.append((out.detach(), leaf.grad))
    return results


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [28, 12, 9])  # even maps take the fused path, odd ones fall back
def test_relu_avgpool_equals_the_two_layers(fmt, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, size, size, generator=g).contiguous(memory_format=FORMATS[fmt])
    x[:, :, ::3] = 0.0  # ReLU's kink: the gradient at exactly 0 must match too
    grad = torch.randn(4, 16, size // 2, size // 2, generator=g).contiguous(memory_format=FORMATS[fmt])
    (ref_out, ref_grad), (out, got_grad) = _pair_and_fused(x, grad)
    assert torch.equal(out, ref_out)
    assert torch.equal(got_grad, ref_grad)
    assert got_grad.is_contiguous(memory_format=FORMATS[fmt])


def test_fusion_keeps_layer_indices_and_state_dict_keys():
    torch.manual_seed(0)
    model = build_model("convnet")
    keys = list(model.state_dict())
    assert fuse_for_training(model) == 2
    assert list(model.state_dict()) == keys
    assert [type(m) for m in model.features] == [
        nn.Conv2d, ReLUAvgPool2d, nn.Identity, nn.Conv2d, ReLUAvgPool2d, nn.Identity]


def test_fusion_leaves_other_layers_alone():
    seq = nn.Sequential(
        nn.ReLU(), nn.AvgPool2d(2),  # not in place: its input may be used elsewhere
        nn.ReLU(inplace=True), nn.AvgPool2d(3),  # another window
        nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )
    assert fuse_for_training(seq) == 0


@pytest.mark.parametrize("arch", ["convnet", "ablate-dil-avg"])
def test_fused_model_trains_like_the_registered_one(arch):
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    grads = []
    for fuse in (False, True):
        torch.manual_seed(0)
        model = build_model(arch).to(memory_format=torch.channels_last)
        if fuse:
            assert fuse_for_training(model) == 2
        logits = model(x.contiguous(memory_format=torch.channels_last))
        logits.logsumexp(1).sum().backward()
        grads.append((logits.detach(), [p.grad for p in model.parameters()]))
    (ref_logits, ref_grads), (logits, got) = grads
    assert torch.equal(logits, ref_logits)
    assert all(torch.equal(a, b) for a, b in zip(got, ref_grads, strict=True))
