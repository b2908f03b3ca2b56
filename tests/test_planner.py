"""bench.planner: who trains together, decided once per grid, and why a packing was refused."""

from __future__ import annotations

import pytest

from bench.checkpoint import CheckpointPlan
from bench.config import RunConfig
from bench.planner import (
    ALONE, CPU_STACK_PART, SEED_GROUP, STACK, Packing, Plan, cpu_refusal, plan_grid, stack_part,
)
from bench.tasks import DataRequest, RunTask, SeedGroupTask

MNIST = {"digits": (1, 10, 28)}  # (in_channels, classes, image size): the shape the CPU rule is set for


def cfg(**changes) -> RunConfig:
    return RunConfig(**{"arch": "lenet", "dataset": "digits", "device": "cuda", **changes})


def task(tmp_path=None, **changes) -> RunTask:
    config = cfg(**changes)
    plan = CheckpointPlan(str(tmp_path / f"{config.run_id()}.pt"), every=0) if tmp_path else None
    return RunTask(config, DataRequest(), plan)


def sizes(units) -> list[int]:
    return [len(u.tasks) if isinstance(u, SeedGroupTask) else 1 for u in units]


def test_seed_groups_pack_runs_that_differ_only_in_seed():
    lenet = [task(seed=s) for s in range(5)]
    dilated = [task(arch="dilated", seed=s) for s in range(2)]
    tasks = [lenet[0], dilated[0], *lenet[1:], dilated[1]]
    plan = plan_grid([t.config for t in tasks], MNIST, seeds_together=2)
    assert plan.packing(lenet[0].config) == Packing(SEED_GROUP, 2)
    assert plan.units(tasks) == [SeedGroupTask((lenet[0], lenet[1])), SeedGroupTask((dilated[0], dilated[1])),
                                 SeedGroupTask((lenet[2], lenet[3])), lenet[4]]  # grid order, at most 2 a group
    assert plan_grid([t.config for t in lenet], MNIST, seeds_together=1).units(lenet) == lenet
    assert plan.notes() == []


def test_runs_that_cannot_share_a_graph_dropout_or_must_resume_train_alone(tmp_path):
    cpu = [cfg(device="cpu", seed=s) for s in (0, 1)]
    assert plan_grid(cpu, MNIST, seeds_together=8).packing(cpu[0]) == Packing()  # CPU: nothing to gain, nothing said
    foreach, dropout = cfg(optimizer_impl="foreach"), cfg(arch="examples-net")
    plan = plan_grid([foreach, dropout], MNIST)
    assert plan.packing(foreach).mode == plan.packing(dropout).mode == ALONE
    notes = plan.notes()
    assert len(notes) == 2
    assert notes[0].startswith("lenet trains alone, not in a seed group: its steps are not captured")
    assert "fused optimizers" in notes[0]
    assert notes[1].startswith("examples-net trains alone, not in a seed group: dropout masks")
    first, second, third = (task(tmp_path, seed=s) for s in (0, 1, 2))
    (tmp_path / f"{first.config.run_id()}.pt").write_bytes(b"a checkpoint")
    plan = plan_grid([first.config], MNIST)
    assert plan.units([first, second, third]) == [first, SeedGroupTask((second, third))]


def test_the_plain_policy_captures_no_graph_so_groups_nothing(monkeypatch):
    monkeypatch.setenv("CNNBENCH_PLAIN", "1")
    plan = plan_grid([cfg()], MNIST)
    assert plan.packing(cfg()).mode == ALONE
    assert "the plain policy captures no CUDA graphs" in plan.notes()[0]


def test_stacks_take_their_size_and_a_cpu_stack_goes_in_parts():
    lenet = [RunConfig(arch="lenet", dataset="digits", seed=s) for s in range(5)]
    dropout = [c.replace(arch="examples-net") for c in lenet]
    plan = plan_grid([*lenet, *dropout], MNIST, stack_seeds=2)
    assert plan.packing(lenet[0]) == Packing(STACK, 2)
    configs = plan.configs([*lenet, *dropout])
    assert [c.stacked for c in configs] == [True] * 5 + [False] * 5  # stacking is part of the run's config
    tasks = [RunTask(c, DataRequest()) for c in configs]
    assert sizes(plan.units(tasks)) == [2, 2, 1, 1, 1, 1, 1, 1]  # lenet 0-1, 2-3, 4; examples-net alone
    assert plan.notes() == [
        "examples-net trains alone, not stacked: dropout would draw every stacked run's masks from one "
        "generator, so a run's seed alone would no longer fix them"]
    # on CPU a stack larger than a part goes as parts, which the workers share
    plan = plan_grid(lenet, MNIST, stack_seeds=8)
    assert sizes(plan.units([RunTask(c, DataRequest()) for c in plan.configs(lenet)])) == [CPU_STACK_PART, 1]
    assert stack_part("cpu", 8) == CPU_STACK_PART and stack_part("cpu", 2) == 2
    assert stack_part("cuda", 32) == 32


def test_stacked_runs_with_checkpoints_stay_in_their_stack(tmp_path):
    saved = CheckpointPlan(str(tmp_path / "checkpoint.pt"), every=1)
    (tmp_path / "checkpoint.pt").write_bytes(b"a checkpoint")
    configs = [RunConfig(arch="lenet", dataset="digits", seed=s) for s in range(CPU_STACK_PART)]
    plan = plan_grid(configs, MNIST, stack_seeds=CPU_STACK_PART)
    tasks = [RunTask(c, DataRequest(), saved) for c in plan.configs(configs)]
    assert plan.units(tasks) == [SeedGroupTask(tuple(tasks))]


def test_on_cpu_stacks_only_networks_a_stack_makes_cheaper():
    # The rule's boundary, from `bench perf --stack-seeds 4` on every registered network
    # (docs/performance.md): the LeNets gain, the next smallest, dilated, does not.
    assert cpu_refusal("lenet5", (1, 10, 28)) is None
    said = cpu_refusal("dilated", (1, 10, 28))
    assert said is not None and "3.6 training MFLOP per image" in said
    assert cpu_refusal("dilated", (1, 10, 14)) is None  # a quarter of the pixels, a quarter of the work
    configs = [RunConfig(arch="dilated", dataset="digits", seed=s) for s in (0, 1)]
    plan = plan_grid(configs, MNIST, stack_seeds=2)
    assert plan.configs(configs) == configs and "on CPU its 3.6" in plan.notes()[0]
    cuda = [c.replace(device="cuda") for c in configs]
    assert plan_grid(cuda, MNIST, stack_seeds=2).packing(cuda[0]) == Packing(STACK, 2)  # the rule is the CPU's


@pytest.mark.parametrize("stacked", [False, True])
def test_without_a_plan_every_run_trains_alone(stacked):
    tasks = [RunTask(RunConfig(arch="lenet", dataset="digits", seed=s, stacked=stacked), DataRequest())
             for s in range(3)]
    assert Plan().units(tasks) == tasks


def test_without_numba_cpu_stacks_use_aten_say_so_once_and_get_ids_of_their_own(monkeypatch, tmp_path):
    from bench.fast import kernels

    monkeypatch.setattr(kernels, "_built", [f"numba is not installed ({kernels.NUMBA_EXTRA})"])
    configs = [RunConfig(arch=a, dataset="digits", seed=s) for a in ("lenet", "lenet-12") for s in (0, 1)]
    plan = plan_grid(configs, MNIST, stack_seeds=2)
    marked = plan.configs(configs)
    assert all(c.stacked and c.aten_stack for c in marked)
    assert plan.notes() == ["stacks use aten's kernels, not bench.fast's: numba is not installed (pip install "
                            "'cnnbench[numba]'); their runs get other last bits and ids of their own"]
    assert marked[0].run_id() != marked[0].replace(aten_stack=False).run_id()
    assert marked[0].replace(aten_stack=False).run_id() == configs[0].replace(stacked=True).run_id()
    cuda = [c.replace(device="cuda") for c in configs]
    assert not any(c.aten_stack for c in plan_grid(cuda, MNIST, stack_seeds=2).configs(cuda))  # CPU kernels only


def test_kernels_that_fail_to_build_are_a_reason_not_a_crash(monkeypatch):
    import sys
    import types

    from bench.fast import kernels

    monkeypatch.setattr(kernels, "_built", [])
    monkeypatch.setitem(sys.modules, "bench.fast.conv_pool", types.ModuleType("bench.fast.conv_pool"))
    reason = kernels.kernel_refusal()
    assert reason is not None and reason.startswith("numba could not build them (")
    assert kernels.kernel_refusal() == reason  # tried once per process
