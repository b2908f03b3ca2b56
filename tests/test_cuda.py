"""The CUDA path, run for real wherever a GPU is present (CI has none: skipped there)."""

import pandas as pd
import pytest
import torch
from conftest import run_cli
from test_avg_pool import NASTY, bits

from bench.fast.avg_pool import BroadcastAvgPool2x2
from bench.config import RunConfig
from bench.fast.cuda_graph import ENV_SWITCH, WARMUP_STEPS
from bench.datasets import load_dataset
from bench.determinism import deterministic_mode
from bench.drivers.seed_group import train_group
from bench.drivers.stacked import unstack_into
from bench.drivers.stacked_training import StackSteps, train_stack
from bench.seeding import data_order_generator
from bench.datasets import prepare_data
from bench.train import build_training, train_run

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU present"),
]


@pytest.fixture(scope="module")
def digits_on_gpu():
    return prepare_data(load_dataset("digits", None), 0.1, "cuda")


def test_dataset_lives_on_the_gpu(digits_on_gpu):
    for split in (digits_on_gpu.train, digits_on_gpu.val, digits_on_gpu.test):
        assert split.images.is_cuda and split.labels.is_cuda
        assert split.images.dtype == torch.uint8  # normalized per batch, on the device


def test_gpu_run_learns_and_agrees_with_cpu(digits_on_gpu):
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=2, device="cuda")
    gpu = train_run(cfg, digits_on_gpu)
    cpu = train_run(cfg.replace(device="cpu"), prepare_data(load_dataset("digits", None), 0.1, "cpu"))
    assert gpu.status == "ok" and gpu.test.accuracy > 0.5
    assert gpu.step_mode == "cuda-graph" and cpu.step_mode == "eager"
    # Same seed, same batches, same init: only kernel rounding differs between devices.
    assert gpu.test.accuracy == pytest.approx(cpu.test.accuracy, abs=0.05)
    assert all(t.device.type == "cpu" for t in gpu.state_dict.values())  # stored weights load anywhere


def test_gpu_grid_from_the_command_line(tmp_path):
    assert run_cli("--archs", "lenet,dilated", "--dataset", "digits", "--seeds", "2", "--epochs", "1",
                   "--device", "cuda", "--out", str(tmp_path), "--no-report") == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert (runs.status == "ok").all() and (runs.device == "cuda").all()
    assert runs.device_name.str.len().gt(0).all()
    assert (runs.step_mode == "cuda-graph").all()


def test_deterministic_mode_names_ops_without_a_deterministic_kernel():
    # Adaptive average-pool backward is on torch's list of CUDA ops without one.
    x = torch.randn(2, 3, 8, 8, device="cuda", requires_grad=True)
    with deterministic_mode(True) as found:
        torch.nn.functional.adaptive_avg_pool2d(x, 3).sum().backward()
    assert found == {"adaptive_avg_pool2d_backward_cuda"}


def test_a_deterministic_gpu_run_repeats_bit_for_bit(tmp_path):
    # Every op of convnet (avg-pool included) has a deterministic CUDA kernel: none is named,
    # and the same run trained twice gives the same numbers.
    for name in ("a", "b"):
        assert run_cli("--archs", "convnet", "--dataset", "digits", "--seeds", "1", "--epochs", "2",
                       "--device", "cuda", "--deterministic", "--out", str(tmp_path / name), "--no-report") == 0
    a, b = (pd.read_csv(tmp_path / name / "runs.csv") for name in ("a", "b"))
    assert (a.status == "ok").all() and a.nondeterministic_ops.isna().all()
    for column in ("final_train_loss", "best_val_loss", "test_loss", "test_acc"):
        assert a[column].tolist() == b[column].tolist(), column


def test_workers_sharing_one_gpu_give_the_same_results_as_one(tmp_path):
    """Four seeds on four workers of one GPU: each run is an ordinary run of its own process."""
    args = ("--archs", "bn-convnet", "--dataset", "digits", "--seeds", "4", "--epochs", "1",
            "--device", "cuda:0", "--deterministic", "--no-report")
    assert run_cli(*args, "--workers", "1", "--out", str(tmp_path / "one")) == 0
    assert run_cli(*args, "--workers", "4", "--out", str(tmp_path / "shared")) == 0
    one, shared = (pd.read_csv(tmp_path / name / "runs.csv").set_index("run_id").sort_index()
                   for name in ("one", "shared"))
    assert (shared.status == "ok").all() and list(shared.index) == list(one.index)
    # Deterministic kernels give the same bits; an op without one (named in runs.csv) may
    # round differently from call to call, in a process alone as well.
    exact = one.nondeterministic_ops.isna().all() and shared.nondeterministic_ops.isna().all()
    for column in ("final_train_loss", "test_loss", "test_acc"):
        expected = one[column].tolist()
        assert shared[column].tolist() == (expected if exact else pytest.approx(expected, rel=1e-3)), column


@pytest.mark.parametrize(("arch", "optimizer"), [
    ("lenet-12", "adam"), ("lenet-12", "sgd"),
    ("convnet", "adam"),  # avg-pool
    ("bn-convnet", "adam"),  # BatchNorm: running statistics updated in place by every replay
    ("examples-net", "adam"),  # dropout: the graph-safe generator must draw the eager masks
])
def test_captured_steps_give_the_bits_of_eager_steps(arch, optimizer, digits_on_gpu, monkeypatch):
    """Two epochs (the lr decays between them: a re-capture), replayed graph against eager
    steps: the same loss sums and hit counts, the same weights, optimizer state and RNG."""
    cfg = RunConfig(arch=arch, dataset="digits", device="cuda", optimizer=optimizer,
                    lr=0.01 if optimizer == "sgd" else 1e-3, lr_schedule="step")
    data = digits_on_gpu

    def train(graphs: bool):
        monkeypatch.setenv(ENV_SWITCH, "1" if graphs else "0")
        training = build_training(cfg, data)
        generator = data_order_generator(cfg.seed)
        sums = []
        for _ in range(2):
            order = torch.randperm(len(data.train), generator=generator).to("cuda")
            sums.append([t.item() for t in training.run_steps(data, order)])
            training.scheduler.step()
        return training, sums, torch.cuda.get_rng_state()

    with deterministic_mode(True):  # kernels that sum in a fixed order, both ways
        eager, eager_sums, eager_rng = train(False)
        graphed, graphed_sums, graphed_rng = train(True)
    assert eager.step_mode == "eager" and graphed.step_mode == "cuda-graph"
    full_batches = len(data.train) // cfg.batch_size
    assert len(data.train) % cfg.batch_size  # a short last batch, stepped eagerly
    assert graphed.graphed.replays == 2 * full_batches - WARMUP_STEPS
    assert graphed.graphed.captures == 2  # one per learning rate
    assert graphed_sums == eager_sums
    assert torch.equal(graphed_rng, eager_rng)
    for (name, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(eager.optimizer.state.values(), graphed.optimizer.state.values(), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert all(not group.get("capturable", False) for group in graphed.optimizer.param_groups)


@pytest.mark.parametrize("arch", ["lenet-12", "convnet", "bn-convnet"])
def test_a_seed_group_gives_each_run_the_bits_it_gets_alone(arch, digits_on_gpu):
    """Three seeds stepped as branches of one CUDA graph, two epochs with a decaying lr."""
    cfgs = [RunConfig(arch=arch, dataset="digits", device="cuda", seed=s, epochs=2, lr_schedule="step")
            for s in range(3)]
    with deterministic_mode(True):
        grouped = train_group(cfgs, digits_on_gpu)
        alone = [train_run(cfg, digits_on_gpu) for cfg in cfgs]
    for got, want in zip(grouped, alone, strict=True):
        assert (got.step_mode, got.seed_group, want.seed_group) == ("cuda-graph", 3, 1)
        assert [e["train_loss"] for e in got.epochs] == [e["train_loss"] for e in want.epochs]
        assert [e["val_loss"] for e in got.epochs] == [e["val_loss"] for e in want.epochs]
        assert (got.test.loss, got.test.accuracy) == (want.test.loss, want.test.accuracy)
        for name, value in want.state_dict.items():
            assert torch.equal(got.state_dict[name], value), name


def test_seeds_together_from_the_command_line(tmp_path):
    args = ("--archs", "lenet,examples-net", "--dataset", "digits", "--seeds", "3", "--epochs", "1",
            "--device", "cuda", "--deterministic", "--no-report")
    assert run_cli(*args, "--out", str(tmp_path / "together")) == 0  # default: up to 8 seeds at once
    assert run_cli(*args, "--seeds-together", "1", "--out", str(tmp_path / "alone")) == 0
    together, alone = (pd.read_csv(tmp_path / name / "runs.csv").set_index("run_id").sort_index()
                       for name in ("together", "alone"))
    assert list(together.index) == list(alone.index) and (together.status == "ok").all()
    assert together.groupby("arch").seed_group.max().to_dict() == {"lenet": 3, "examples-net": 1}  # dropout: alone
    assert (alone.seed_group == 1).all()
    for column in ("final_train_loss", "best_val_loss", "test_loss", "test_acc"):
        assert together[column].tolist() == alone[column].tolist(), column


def test_the_broadcast_avg_pool_backward_is_atens_cuda_kernel_bit_for_bit():
    nasty = NASTY.cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(64, 16, 28, 28, device="cuda", generator=generator)
    for grad in (torch.randn(64, 16, 14, 14, device="cuda", generator=generator),
                 nasty[torch.randint(len(nasty), (64, 16, 14, 14), device="cuda", generator=generator)]):
        ours_x, aten_x = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours, aten = BroadcastAvgPool2x2()(ours_x), torch.nn.functional.avg_pool2d(aten_x, 2)
        assert type(ours.grad_fn).__name__ == "AvgPool2x2Backward"  # its path, not aten's
        ours.backward(grad)
        aten.backward(grad)
        assert torch.equal(bits(ours), bits(aten))
        assert torch.equal(bits(ours_x.grad), bits(aten_x.grad))


def test_training_with_the_broadcast_avg_pool_gives_atens_bits(digits_on_gpu, monkeypatch):
    cfg = RunConfig(arch="convnet", dataset="digits", device="cuda", epochs=2)
    with deterministic_mode(True):
        ours = train_run(cfg, digits_on_gpu)
        monkeypatch.setattr("bench.train.use_broadcast_avg_pool", lambda model: 0)
        aten = train_run(cfg, digits_on_gpu)
    assert [e["train_loss"] for e in ours.epochs] == [e["train_loss"] for e in aten.epochs]
    assert (ours.test.loss, ours.test.accuracy) == (aten.test.loss, aten.test.accuracy)
    for name, value in aten.state_dict.items():
        assert torch.equal(bits(ours.state_dict[name]), bits(value)), name


def test_cuda_training_swaps_convnets_avg_pools(digits_on_gpu):
    model = build_training(RunConfig(arch="convnet", dataset="digits", device="cuda"), digits_on_gpu).model
    assert sum(isinstance(m, BroadcastAvgPool2x2) for m in model.modules()) == 2


@pytest.mark.parametrize("arch", ["lenet-12", "convnet", "bn-convnet"])
def test_one_stacked_cuda_step_equals_each_run_alone(arch, digits_on_gpu):
    """A stack of three seeds on the GPU: after one SGD step each run's slice of the stack
    holds what its solo run holds, up to the rounding of cuDNN's grouped kernels."""
    cfgs = [RunConfig(arch=arch, dataset="digits", device="cuda", seed=s, optimizer="sgd", lr=0.05,
                      momentum=0.9, batch_size=32, stacked=True) for s in range(3)]
    orders = torch.stack([torch.randperm(len(digits_on_gpu.train), generator=data_order_generator(s))[:32]
                          for s in range(3)]).cuda()
    steps = StackSteps(cfgs, digits_on_gpu)
    steps.run(digits_on_gpu, orders)
    mine = [build_training(c.replace(stacked=False), digits_on_gpu).model for c in cfgs]
    unstack_into(steps.model, mine)
    for cfg, order, got in zip(cfgs, orders, mine, strict=True):
        training = build_training(cfg.replace(stacked=False), digits_on_gpu)
        training.graphed = None
        training.run_steps(digits_on_gpu, order)
        for (name, a), b in zip(got.state_dict().items(), training.model.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), \
                f"seed {cfg.seed}: {name} differs by {(a - b).abs().max()}"


@pytest.mark.parametrize("arch", ["lenet-12", "convnet", "bn-convnet"])
def test_a_stack_replayed_from_a_cuda_graph_gives_the_bits_of_eager_stacked_steps(arch, digits_on_gpu, monkeypatch):
    """Three stacked seeds, two epochs with a decaying lr (a re-capture): replayed against
    eager stacked steps, the same loss sums, hits, weights and optimizer state."""
    cfgs = [RunConfig(arch=arch, dataset="digits", device="cuda", seed=s, lr_schedule="step", stacked=True)
            for s in range(3)]
    data = digits_on_gpu

    def train(graphs: bool):
        monkeypatch.setenv(ENV_SWITCH, "1" if graphs else "0")
        steps = StackSteps(cfgs, data)
        generators = [data_order_generator(cfg.seed) for cfg in cfgs]
        sums = []
        for _ in range(2):
            orders = torch.stack([torch.randperm(len(data.train), generator=g) for g in generators]).cuda()
            sums.append([t.tolist() for t in steps.run(data, orders)])
        return steps, sums

    with deterministic_mode(True):
        eager, eager_sums = train(False)
        graphed, graphed_sums = train(True)
    assert eager.graphed is None and graphed.graphed is not None
    full_batches = len(data.train) // cfgs[0].batch_size
    assert graphed.graphed.replays == 2 * full_batches - WARMUP_STEPS
    assert graphed.graphed.captures == 2  # one per learning rate
    assert graphed_sums == eager_sums
    for (name, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(eager.optimizer.state.values(), graphed.optimizer.state.values(), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_a_cuda_grid_stacks_every_seed_of_a_network_at_once(tmp_path):
    out = tmp_path / "out"
    assert run_cli("--archs", "lenet-12,convnet,examples-net", "--dataset", "digits", "--seeds", "3",
                   "--epochs", "1", "--device", "cuda", "--stack-seeds", "8", "--no-report", "--out", str(out)) == 0
    runs = pd.read_csv(out / "runs.csv").set_index(["arch", "seed"]).sort_index()
    assert (runs.status == "ok").all()
    for arch in ("lenet-12", "convnet"):  # no CPU cost rule on a GPU: all seeds in one stack
        assert (runs.loc[arch].step_mode == "stacked").all() and (runs.loc[arch].seed_group == 3).all()
        assert (runs.loc[arch].stacked_with == "0,1,2").all()
    assert (runs.loc["examples-net"].step_mode != "stacked").all()  # dropout: alone


def test_an_interrupted_cuda_stack_resumes_from_its_checkpoints(digits_on_gpu, tmp_path, monkeypatch):
    """Captured steps, Adam's state on the GPU: a stack resumed after epoch 2 trains only
    epoch 3 and ends where the uninterrupted stack ends (bit for bit is asserted on CPU)."""
    from test_stacked_resume import interrupt_after_epoch_2, plans, trained_epochs

    cfgs = [RunConfig(arch="convnet", dataset="digits", device="cuda", seed=s, epochs=3, stacked=True)
            for s in (0, 1)]
    with deterministic_mode(True):
        reference = train_stack(cfgs, digits_on_gpu)
        saved = plans(tmp_path, cfgs)
        interrupt_after_epoch_2(cfgs, digits_on_gpu, saved, monkeypatch)
        resumed, trained = trained_epochs(cfgs, digits_on_gpu, saved)
    assert trained == [(0, 3), (1, 3)]
    for got, want in zip(resumed, reference, strict=True):
        assert got.step_mode == want.step_mode
        for name, value in want.state_dict.items():
            assert torch.allclose(got.state_dict[name], value, rtol=1e-5, atol=1e-6), name
