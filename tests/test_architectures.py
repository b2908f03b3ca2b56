"""The architecture zoo and its registry (timm-style: every test runs over the whole registry)."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys

import pytest
import torch
from torch import nn

from architectures import (
    UnknownArchitectureError,
    build_model,
    get_spec,
    list_models,
    register_model,
    resolve,
    unregister_model,
)
from architectures._shapes import feature_shape
from conftest import run_cli

ALL = list_models()
ABLATION = [f"ablate-{c}-{d}" for c, d in itertools.product(("std", "dil"), ("max", "avg", "stride"))]


def _build(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, **kwargs)


def _batch(n: int = 2, channels: int = 1, size: int = 28) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))


# -- every registered network -----------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_forward_gives_finite_logits(name):
    out = _build(name)(_batch())
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_flatten_sizes_follow_input_shape(name):
    """Builders compute their flatten size, so another input shape and class count just work."""
    out = _build(name, in_channels=3, num_classes=5, image_size=32)(_batch(channels=3, size=32))
    assert out.shape == (2, 5)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (1, 32), (3, 28), (3, 32)])
@pytest.mark.parametrize("name", ALL)
def test_one_training_step_on_gray_and_colour_at_28_and_32_pixels(name, channels, size):
    """What folder:, cifar10 and the MNIST family feed: every network builds and steps on each."""
    model = _build(name, in_channels=channels, num_classes=3, image_size=size).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(_batch(4, channels, size)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("name", ALL)
def test_backward_reaches_every_parameter(name):
    model = _build(name).train()
    model(_batch()).logsumexp(1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", ALL)
def test_channels_last_matches_contiguous(name):
    """``.view`` on a channels_last conv output raises; flatten/reshape gives the same logits."""
    model = _build(name).eval()
    x = _batch()
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def _tied_batch(n: int = 8) -> torch.Tensor:
    """Blocky images: constant 4x4 patches (like MNIST's flat background) make many pooling
    windows hold equal maxima, positive and negative, where the two orders could differ."""
    g = torch.Generator().manual_seed(2)
    coarse = torch.randint(-2, 3, (n, 1, 7, 7), generator=g).float()
    return coarse.repeat_interleave(4, 2).repeat_interleave(4, 3)


@pytest.mark.parametrize("name", ALL)
def test_pool_before_relu_rewrite_is_bit_identical(name):
    """bench.fast runs max-pool before ReLU where a network writes ReLU then max-pool: the
    same logits and the same gradients, bit for bit (networks with no such pair compare
    with themselves, which the rewrite count says)."""
    from bench.fast.relu_order import pool_before_relu

    textbook = _build(name).train()
    fast = _build(name).train()
    swapped = pool_before_relu(fast)
    has_pair = any(isinstance(a, nn.ReLU) and isinstance(b, nn.MaxPool2d)
                   for seq in textbook.modules() if isinstance(seq, nn.Sequential) for a, b in zip(seq, seq[1:]))
    assert (swapped > 0) == has_pair
    x = _tied_batch()
    grads = []
    for model in (fast, textbook):
        torch.manual_seed(3)  # the same dropout masks
        logits = model(x)
        logits.logsumexp(1).sum().backward()
        grads.append((logits.detach(), {k: p.grad for k, p in model.named_parameters()}))
    (fast_logits, fast_grads), (ref_logits, ref_grads) = grads
    assert torch.equal(fast_logits, ref_logits)
    for k, g in ref_grads.items():
        assert torch.equal(fast_grads[k], g), k


@pytest.mark.parametrize("name", ALL)
def test_metadata_is_complete(name):
    spec = get_spec(name)
    assert spec.name == name == name.lower()
    assert spec.family and spec.description
    assert spec.builder.__doc__ and len(spec.builder.__doc__.strip()) > 40
    assert spec.tags, "every network carries at least one tag"


@pytest.mark.parametrize("name", ALL)
def test_default_means_a_complete_factorial_cell(name):
    """``make bench`` runs the networks tagged default: each must be a cell of the factorial
    ablation design (factor levels declared), so the default report can estimate effects."""
    spec = get_spec(name)
    if "default" in spec.tags:
        assert spec.factors and "ablation" in spec.tags


# -- hand-computed parameter counts -----------------------------------------------------

def conv(c_in, c_out, k):  # weights + bias
    return c_out * c_in * k * k + c_out


def fc(n_in, n_out):
    return n_in * n_out + n_out


def bn(c):  # weight + bias (running stats are buffers, not parameters)
    return 2 * c


PARAMS = {
    # 28 -> conv3 26 -> pool 13 -> conv5 9 -> pool 4: 16*4*4 = 256
    "lenet": conv(1, 6, 3) + conv(6, 16, 5) + fc(256, 120) + fc(120, 84) + fc(84, 10),  # 44,330
    # 28 -> conv5 pad2 28 -> 14 -> conv5 10 -> 5: 16*5*5 = 400
    "lenet5": conv(1, 6, 5) + conv(6, 16, 5) + fc(400, 120) + fc(120, 84) + fc(84, 10),  # 61,706
    # 28 -> 24 -> 12 -> 8 -> 4: 12*4*4 = 192
    "lenet-12": conv(1, 6, 5) + conv(6, 12, 5) + fc(192, 120) + fc(120, 60) + fc(60, 10),  # 32,998
    # 28 -> conv3 pad1 28 -> 14 -> conv3 12 -> 6: 32*6*6 = 1152
    "convnet": conv(1, 16, 3) + conv(16, 32, 3) + fc(1152, 256) + fc(256, 128) + fc(128, 10),  # 334,154
    # dilation adds no weights; 28 -> 26 -> 13 -> 9 -> 4: 32*4*4 = 512
    "dilated": conv(1, 16, 3) + conv(16, 32, 3) + fc(512, 256) + fc(256, 128) + fc(128, 10),  # 170,314
    # 28 -> 28 -> 14 -> 14 -> 7: 32*7*7 = 1568
    "bn-convnet": conv(1, 16, 5) + bn(16) + conv(16, 32, 5) + bn(32) + fc(1568, 10),  # 29,034
    # 28 -> 26 -> 24 -> 12: 64*12*12 = 9216
    "examples-net": conv(1, 32, 3) + conv(32, 64, 3) + fc(9216, 128) + fc(128, 10),  # 1,199,882
    # ablation with strided downsampling: two extra c->c 3x3 convs
    "ablate-std-stride": conv(1, 16, 3) + conv(16, 16, 3) + conv(16, 32, 3) + conv(32, 32, 3)
    + fc(1152, 256) + fc(256, 128) + fc(128, 10),  # 345,722
}


def test_hand_computed_values():
    assert PARAMS["lenet"] == 44_330
    assert PARAMS["lenet5"] == 61_706
    assert PARAMS["convnet"] == 334_154
    assert PARAMS["dilated"] == 170_314
    assert PARAMS["bn-convnet"] == 29_034


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count(name):
    assert sum(p.numel() for p in _build(name).parameters()) == PARAMS[name]


# -- the factorial ablation family ------------------------------------------------------

@pytest.mark.parametrize("name", ABLATION)
def test_ablation_factors_metadata(name):
    _, conv_level, down_level = name.split("-")
    spec = get_spec(name)
    assert dict(spec.factors) == {"conv": conv_level, "downsample": down_level}
    assert spec.tags == {"ablation", "default"}
    assert spec.family == "ablation"


def _downsamplers(model: nn.Module) -> list[nn.Module]:
    """The downsampling operator of each stage: the non-ReLU of the two layers after its conv
    (each follows its stage's ReLU)."""
    stages = (model.features[1:3], model.features[4:6])
    return [next(m for m in pair if not isinstance(m, nn.ReLU)) for pair in stages]


def _signature(model: nn.Module) -> tuple[list[str], list[str], str]:
    """What the six nets must share: every non-downsample layer (dilation/padding aside),
    the shapes after each stage, and the classifier."""
    slots = []
    dilations = []
    down = {id(m) for m in _downsamplers(model)}
    for m in model.features:
        if id(m) in down:  # the second factor
            continue
        if isinstance(m, nn.Conv2d):
            dilations.append(m.dilation)
            slots.append(f"Conv2d({m.in_channels},{m.out_channels},k={m.kernel_size},s={m.stride})")
        else:
            slots.append(repr(m))
    shapes = [str(feature_shape(model.features[:end], 1, 28)) for end in (3, 6)]
    return slots + shapes, dilations, repr(model.classifier)


def test_ablation_nets_differ_only_in_their_factors():
    signatures = {}
    for name in ABLATION:
        model = _build(name)
        slots, dilations, classifier = _signature(model)
        signatures[name] = (slots, classifier)
        factors = get_spec(name).factors
        conv_level, down_level = factors["conv"], factors["downsample"]
        assert dilations == ([(2, 2)] * 2 if conv_level == "dil" else [(1, 1)] * 2)
        expected = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d, "stride": nn.Conv2d}[down_level]
        assert [type(m) for m in _downsamplers(model)] == [expected, expected]
    reference = signatures[ABLATION[0]]
    assert reference[0][-2:] == ["(16, 14, 14)", "(32, 6, 6)"]  # the convnet map sizes
    for name, sig in signatures.items():
        assert sig == reference, f"{name} differs from {ABLATION[0]} outside its factors"


def test_ablation_conv_factor_changes_no_parameter():
    for down in ("max", "avg", "stride"):
        std = {k: v.shape for k, v in _build(f"ablate-std-{down}").state_dict().items()}
        dil = {k: v.shape for k, v in _build(f"ablate-dil-{down}").state_dict().items()}
        assert std == dil


def test_strided_downsample_is_a_3x3_stride_2_conv():
    model = _build("ablate-dil-stride")
    for m, c in zip(_downsamplers(model), (16, 32), strict=True):
        assert (m.in_channels, m.out_channels) == (c, c)
        assert (m.kernel_size, m.stride, m.padding, m.dilation) == ((3, 3), (2, 2), (1, 1), (1, 1))


# -- the registry -----------------------------------------------------------------------

def _dummy(in_channels=1, num_classes=10, image_size=28):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_classes))


def test_duplicate_registration_raises():
    original = get_spec("lenet").builder
    with pytest.raises(ValueError, match="'lenet' is already registered by architectures.lenet.lenet"):
        register_model("lenet", family="x", description="x")(_dummy)
    assert get_spec("lenet").builder is original

    register_model("zz-test-dup", family="test", description="throw-away")(_dummy)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_model("zz-test-dup", family="test", description="again")(_dummy)
    finally:
        unregister_model("zz-test-dup")
    assert "zz-test-dup" not in list_models()


@pytest.mark.parametrize("bad", ["LeNet", "two words", ""])
def test_bad_names_are_rejected(bad):
    with pytest.raises(ValueError, match="lowercase"):
        register_model(bad, family="x", description="x")


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownArchitectureError) as exc:
        get_spec("resnet")
    message = str(exc.value)
    assert message.startswith("unknown architecture 'resnet'; known: ")
    assert all(name in message for name in ALL)


def test_unknown_glob_and_tag_list_known_ones():
    with pytest.raises(UnknownArchitectureError, match=r"no architecture matches 'resnet\*'; known: .*lenet5"):
        resolve("resnet*")
    with pytest.raises(UnknownArchitectureError) as exc:
        resolve("tag:nope")
    known = sorted({t for name in ALL for t in get_spec(name).tags})
    assert str(exc.value) == f"no architecture has tag 'nope'; known tags: {', '.join(known)}"
    with pytest.raises(UnknownArchitectureError, match="unknown architecture 'nope'"):
        resolve("lenet,nope")  # one bad item fails the whole selector


def test_resolve_names_globs_tags_and_lists():
    assert resolve("lenet5") == ["lenet5"]
    assert resolve("lenet*") == ["lenet", "lenet-12", "lenet5"]
    assert resolve("ablate-*-max") == ["ablate-dil-max", "ablate-std-max"]
    assert resolve("tag:batchnorm") == ["bn-convnet", "vgg-small-bn"]
    # first-seen order, no repeats, spaces and empty items ignored
    assert resolve(" dilated, lenet ,,tag:baseline,dilated") == ["dilated", "lenet", "convnet"]
    assert resolve(["vgg-*", "lenet"]) == ["vgg-small", "vgg-small-bn", "lenet"]
    with pytest.raises(UnknownArchitectureError, match="no architecture selected"):
        resolve(" , ")


ZZ_SOURCE = '''"""A throw-away family."""
from torch import nn
from architectures import register_model


# builds the smallest network there is
@register_model("zz-digest", family="test", description="throw-away")
def zz(in_channels=1, num_classes=10, image_size=28):
    """Flatten only."""
    return nn.Flatten()
'''
PROSE_EDITS = {
    "comment": ("# builds the smallest", "# builds the tiniest"),
    "docstring": ('"""Flatten only."""', '"""Flatten, and nothing else."""'),
    "module docstring": ('"""A throw-away family."""', '"""A family to throw away."""'),
    "description": ('description="throw-away"', 'description="thrown away"'),
    "blank lines": ("\n\n\n# builds", "\n# builds"),
}
CODE_EDITS = {
    "an argument": ("nn.Flatten()", "nn.Flatten(1)"),
    "a layer": ("return nn.Flatten()", "return nn.Sequential(nn.Flatten())"),
}


@pytest.fixture
def zz_digest(tmp_path, monkeypatch):
    """The digest of ZZ_SOURCE after an edit, loaded as a user module would be."""
    path = tmp_path / "zz_digest_family.py"

    def digest(old: str = "", new: str = "") -> str:
        assert old in ZZ_SOURCE
        path.write_text(ZZ_SOURCE.replace(old, new))
        unregister_model("zz-digest")
        spec = importlib.util.spec_from_file_location("zz_digest_family", path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "zz_digest_family", module)
        spec.loader.exec_module(module)
        return get_spec("zz-digest").digest

    yield digest
    unregister_model("zz-digest")


@pytest.mark.parametrize("edit", PROSE_EDITS)
def test_editing_prose_keeps_the_digest(edit, zz_digest):
    """A network's identity is its code: comments, docstrings and metadata are not."""
    first = zz_digest()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert zz_digest(*PROSE_EDITS[edit]) == first


@pytest.mark.parametrize("edit", CODE_EDITS)
def test_editing_code_changes_the_digest(edit, zz_digest):
    assert zz_digest(*CODE_EDITS[edit]) != zz_digest()


def _digests_with(monkeypatch, module_name: str, old: str, new: str) -> dict[str, str]:
    """Every network's digest computed afresh as if ``module_name``'s source had ``old`` -> ``new``."""
    import inspect

    import architectures.registry as registry

    real = inspect.getsource

    def edited(obj):
        source = real(obj)
        if getattr(obj, "__name__", "") == module_name:
            assert old in source
            return source.replace(old, new)
        return source

    monkeypatch.setattr(registry.inspect, "getsource", edited)
    try:
        return {name: type(get_spec(name)).digest.func(get_spec(name)) for name in ALL}
    finally:
        monkeypatch.undo()


def test_editing_a_shared_helper_changes_exactly_the_networks_built_from_it(monkeypatch):
    before = {name: get_spec(name).digest for name in ALL}
    users = {name for name in ALL
             if "architectures._blocks" in {m.__name__ for m in _helper_modules_of(name)}}
    assert users and users != set(ALL)  # fullconv builds without _blocks
    assert _digests_with(monkeypatch, "architectures._blocks", "from ._shapes", "# a comment\nfrom ._shapes") == before
    after = _digests_with(monkeypatch, "architectures._blocks", "layers.append(nn.Linear(width, num_classes))",
                          "layers.append(nn.Linear(width, num_classes, bias=True))")
    assert {name for name in ALL if after[name] != before[name]} == users


def _helper_modules_of(name: str):
    from architectures.registry import helper_modules

    return helper_modules(sys.modules[get_spec(name).builder.__module__])


def test_digest_covers_the_shared_helpers():
    """A family's classifier comes from ``_blocks``: editing it must change the digest too."""
    assert [m.__name__ for m in _helper_modules_of("lenet")] == ["architectures._blocks", "architectures._shapes"]


# -- python -m bench list ---------------------------------------------------------------

def test_bench_list_shows_every_network_with_its_cost(capsys):
    assert run_cli("list") == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert set(rows) == set(ALL)
    # lenet's training FLOPs per image, by hand (FlopCounterMode counts 2 FLOPs per MAC):
    # forward MACs: conv1 26*26*6*9 + conv2 9*9*16*6*25 + fc 256*120 + 120*84 + 84*10
    fwd = 26 * 26 * 6 * 9 + 9 * 9 * 16 * 6 * 25 + 256 * 120 + 120 * 84 + 84 * 10
    conv1 = 26 * 26 * 6 * 9
    # backward: weight grads for every layer, input grads for all but the first conv
    train_flops = 2 * fwd + 2 * (fwd + (fwd - conv1))
    assert train_flops == 1_562_256
    cells = [c.strip() for c in rows["lenet"].split("│")]
    assert cells[1:6] == ["lenet", "lenet", "baseline,seed", "44,330", f"{train_flops / 1e6:.2f}"]
    assert "334,154" in rows["convnet"]


def test_bench_list_selector_and_unknown(capsys):
    assert run_cli("list", "tag:ablation") == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ABLATION) and "lenet" not in out
    assert run_cli("list", "resnet") == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: unknown architecture 'resnet'; known: ")
    assert "Traceback" not in captured.err
