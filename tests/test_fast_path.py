"""Speed must not change the science: cnnbench's training path equals a plain eager loop.

The eager loop below is what a tutorial writes: the same seeded model, torch's Adam, the
same batches in the same order, ``.item()`` after every step.  The fast path (device-side
batches, no host sync, loss accumulated on the device) must give bit-identical weights and
metrics: with torch's fused Adam by default, with its default per-parameter Adam under
``optimizer_impl="foreach"``.

The memory format is the one thing that may change bits: channels_last runs other
convolution kernels, which sum in another order.  So the eager loop uses the format the
fast path chose (recorded with every run), and a separate test shows that the two formats
differ only in the last bits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from architectures import build_model
from bench.config import RunConfig
from bench.fast.cuda_graph import ENV_SWITCH, graph_refusal
from bench.datasets import DataSearch, load_dataset
from bench.seeding import data_order_generator
from bench.datasets import prepare_data
from bench.fast.memory_format import choose_memory_format
from bench.train import build_training, train_run

ARCHS = ["lenet-12", "convnet", "dilated", "bn-convnet"]  # max-pool, avg-pool, dilated, BatchNorm


@pytest.fixture(scope="module")
def digits():
    # A slice keeps the test fast: 320 training images = 5 steps of 64 per epoch.
    dataset = load_dataset("digits", DataSearch(download=False))
    data = prepare_data(dataset, 0.0, "cpu")
    return data.__class__(**{**data.__dict__, "train": data.train.subset(torch.arange(320))})


def eager_loop(arch: str, data, orders, memory_format, seed: int = 0, fused: bool = False):
    """The tutorial loop, with a host sync per step.  Returns (model, [(loss_sum, hits)]).

    ``fused`` picks torch's fused Adam instead of its default per-parameter loop.
    """
    torch.manual_seed(seed)
    model = build_model(arch, in_channels=1, num_classes=10, image_size=28).to(memory_format=memory_format)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if fused else {}))
    epochs = []
    for order in orders:
        total, hits = 0.0, 0
        for start in range(0, len(order), 64):
            index = order[start:start + 64]
            x = (data.train.images[index].float() / 255 - data.mean) / data.std
            x = x.contiguous(memory_format=memory_format)
            y = data.train.labels[index]
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            hits += (logits.argmax(1) == y).sum().item()
        epochs.append((total, hits))
    return model, epochs


@pytest.mark.parametrize("impl", ["fused", "foreach"])
@pytest.mark.parametrize("arch", ARCHS)
def test_train_run_equals_the_eager_loop(arch, impl, digits):
    """fused: equal to the loop with torch's fused Adam; foreach: with torch's default Adam."""
    cfg = RunConfig(arch=arch, dataset="digits", seed=3, epochs=2, val_fraction=0.0, test_weights="last",
                    optimizer_impl=impl)
    outcome = train_run(cfg, digits)

    generator = data_order_generator(cfg.seed)
    orders = [torch.randperm(len(digits.train), generator=generator) for _ in range(cfg.epochs)]
    fmt = torch.channels_last if outcome.memory_format == "channels_last" else torch.contiguous_format
    model, epochs = eager_loop(arch, digits, orders, fmt, seed=cfg.seed, fused=impl == "fused")

    n = len(digits.train)
    for record, (total, hits) in zip(outcome.epochs, epochs, strict=True):
        assert record["train_loss"] == total / n
        assert record["train_acc"] == hits / n
    expected = model.state_dict()
    assert outcome.state_dict.keys() == expected.keys()
    for name, value in outcome.state_dict.items():
        assert torch.equal(value, expected[name].contiguous()), name


def test_memory_format_changes_only_the_last_bits(digits):
    """Same init, same batch: both formats give the same loss and gradients up to rounding.

    (Over many Adam steps the rounding differences grow, as Adam rescales tiny gradients by
    their own magnitude: which is why the format is recorded with every run.)
    """
    index = torch.arange(64)
    grads, losses = {}, {}
    for fmt in ("contiguous", "channels_last"):
        cfg = RunConfig(arch="convnet", dataset="digits", val_fraction=0.0, test_weights="last",
                        memory_format=fmt)
        training = build_training(cfg, digits)
        x, y = training.batch(digits, digits.train, index)
        loss = F.cross_entropy(training.model(x), y)
        loss.backward()
        losses[fmt] = loss.item()
        grads[fmt] = {n: p.grad.contiguous() for n, p in training.model.named_parameters()}
    assert losses["contiguous"] == pytest.approx(losses["channels_last"], rel=1e-6)
    for name, grad in grads["contiguous"].items():
        torch.testing.assert_close(grad, grads["channels_last"][name], rtol=1e-4, atol=1e-6)


def test_fused_and_foreach_adam_differ_only_in_the_last_bits(digits):
    """Same init, same batches: the two implementations track each other to rounding.

    (Not bit for bit, which is why the implementation is part of the run's config; over many
    steps the differences grow, as with the memory format.)
    """
    outcomes = {}
    for impl in ("fused", "foreach"):
        cfg = RunConfig(arch="lenet-12", dataset="digits", seed=0, epochs=1, val_fraction=0.0,
                        test_weights="last", optimizer_impl=impl)
        outcomes[impl] = train_run(cfg, digits)
    fused, foreach = outcomes["fused"], outcomes["foreach"]
    assert fused.epochs[0]["train_loss"] == pytest.approx(foreach.epochs[0]["train_loss"], rel=1e-5)
    different = False
    for name, value in fused.state_dict.items():
        torch.testing.assert_close(value, foreach.state_dict[name], rtol=1e-4, atol=1e-5)
        different |= not torch.equal(value, foreach.state_dict[name])
    assert different, "fused Adam gave the per-parameter loop's exact bits: drop the option"


def test_optimizers_are_fused_where_torch_has_a_fused_kernel():
    from bench.fast import speedups
    from bench.train import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    for optimizer, impl, fused in (("adam", "fused", True), ("sgd", "fused", True),
                                   ("adadelta", "fused", False), ("adam", "foreach", False)):
        cfg = RunConfig(arch="lenet", dataset="digits", optimizer=optimizer, optimizer_impl=impl)
        group = make_optimizer(cfg, params, speedups(cfg).optimizer_options).param_groups[0]
        assert bool(group.get("fused")) is fused, (optimizer, impl)
        assert bool(group.get("foreach")) is not fused, (optimizer, impl)


def test_memory_format_rule_is_fixed_per_structure():
    def fmt(arch, device="cpu", requested="auto", model=None):
        cfg = RunConfig(arch=arch, dataset="digits", memory_format=requested, device=device)
        return choose_memory_format(cfg, model if model is not None else build_model(arch))

    for arch in ("lenet-12", "lenet", "convnet", "dilated", "bn-convnet"):
        assert fmt(arch) == torch.channels_last  # a rule on structure and device, no probe
        assert fmt(arch, device="cuda") == torch.contiguous_format
        assert fmt(arch, requested="contiguous") == torch.contiguous_format
        assert fmt(arch, device="cuda", requested="channels_last") == torch.channels_last
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert fmt("lenet", model=mlp) == torch.contiguous_format  # nothing for NHWC to speed up


def test_cuda_graph_capture_is_refused_where_it_would_change_bits(monkeypatch):
    """Only CUDA runs with a fused optimizer, fp32 and no compile replay a captured step; the
    rest step eagerly (tests/test_cuda.py checks on a GPU that replays keep the bits)."""
    cuda = RunConfig(arch="lenet", dataset="digits", device="cuda")
    assert graph_refusal(cuda) is None
    assert graph_refusal(cuda.replace(optimizer="sgd")) is None
    assert "CUDA" in graph_refusal(cuda.replace(device="cpu"))
    assert "fused" in graph_refusal(cuda.replace(optimizer_impl="foreach"))
    assert "fused" in graph_refusal(cuda.replace(optimizer="adadelta"))
    assert "autocast" in graph_refusal(cuda.replace(dtype="bfloat16-autocast"))
    assert "compile" in graph_refusal(cuda.replace(compile=True))
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert ENV_SWITCH in graph_refusal(cuda)


def test_cpu_runs_step_eagerly_and_say_so(digits):
    cfg = RunConfig(arch="lenet-12", dataset="digits", epochs=1, val_fraction=0.0, test_weights="last")
    assert build_training(cfg, digits).step_mode == "eager"
    assert train_run(cfg, digits).step_mode == "eager"


def test_a_run_gives_the_same_bits_whatever_the_process_thread_count():
    """oneDNN splits reductions by thread count: execute fixes it, so --workers cannot matter."""
    from bench.tasks import DataRequest, RunTask, execute

    task = RunTask(RunConfig(arch="lenet-12", dataset="digits", epochs=1), DataRequest())
    before = torch.get_num_threads()
    records = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            records.append(execute(task))
            assert torch.get_num_threads() == threads  # restored afterwards
    finally:
        torch.set_num_threads(before)
    a, b = records
    assert a.status == b.status == "ok"
    assert a.env["cpu_threads"] == b.env["cpu_threads"] == 1
    assert a.epochs[0]["train_loss"] == b.epochs[0]["train_loss"]
    for name, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[name]), name


@pytest.mark.parametrize("arch", ["convnet", "bn-convnet"])
def test_the_feature_stack_gets_its_gradient_back_in_channels_last(arch, digits):
    """Flatten's backward gives an NCHW gradient; the training path hands it on in
    channels_last, so pooling, ReLU and BatchNorm backward see one layout (equal values:
    the bit-for-bit tests above run the loop without this)."""
    cfg = RunConfig(arch=arch, dataset="digits", val_fraction=0.0, test_weights="last")
    training = build_training(cfg, digits)
    assert training.memory_format == torch.channels_last
    seen = []
    flatten = next(m for m in training.model.modules() if isinstance(m, torch.nn.Flatten))

    def watch(_module, args, _output):
        args[0].register_hook(seen.append)  # after the training path's own hook

    flatten.register_forward_hook(watch)
    x, y = training.batch(digits, digits.train, torch.arange(64))
    F.cross_entropy(training.model(x), y).backward()
    (grad,) = seen
    assert grad.shape[1] > 1 and grad.shape[2] * grad.shape[3] > 1  # a layout that can differ
    assert grad.is_contiguous(memory_format=torch.channels_last) and not grad.is_contiguous()
