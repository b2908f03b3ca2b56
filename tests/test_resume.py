"""Resume and cache: finished runs survive SIGKILL, Ctrl-C and SIGTERM, and are reused.

The kill tests run the real CLI in a subprocess and interrupt it in the middle of a run.
Tables are compared with those of an uninterrupted grid on every metric column; timing
columns (seconds, images/s) and environment columns (hostname, git commit, ...) differ
between any two invocations and are excluded.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch

from architectures.registry import ArchSpec
from bench import schema
from bench.checkpoint import CheckpointPlan, Checkpointer
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset
from bench.storage import CHECKPOINT_FILE, leftover_temporaries, read_tables
from bench.datasets import prepare_data
from bench.train import train_run
from conftest import run_cli, run_cli_process, start_cli

# 6 epochs: a kill test has the second run's epochs 2..6 to land in, time enough for a loaded
# machine's poll to see the first record and signal before the grid ends.
GRID = ["--archs", "lenet", "--dataset", "digits", "--seed-list", "0,1", "--epochs", "6",
        "--workers", "1", "--no-report"]
RUNS = 2
# Columns that differ between any two invocations (times, the machine), as bench.schema declares them.
VARYING = {name: schema.varying(table) for name, table in ((t.file, t) for t in schema.TABLES)}


def start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return start_cli(*args, cache=tmp_path / "cache")


def records(out: Path) -> list[Path]:
    return sorted(out.glob("runs/*/record.json"))


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the grid ended before the condition held: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail("timed out waiting for the grid")
        time.sleep(0.02)


def metric_tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = read_tables(out)
    return {name: frame.drop(columns=[c for c in frame.columns if c in VARYING[name]])
            for name, frame in tables.items()}


def assert_same_tables(out: Path, reference: Path) -> None:
    got, want = metric_tables(out), metric_tables(reference)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The grid of the kill tests, run without interruption (and without checkpoints)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    mp = pytest.MonkeyPatch()
    mp.setenv("CNNBENCH_NO_DOWNLOAD", "1")
    try:
        assert run_cli(*GRID, "--out", str(out)) == 0
    finally:
        mp.undo()
    return out


def test_a_rerun_drops_the_checkpoint_a_kill_left_beside_a_stored_record(tmp_path, uninterrupted, capsys):
    """SIGKILL can land after a record is stored and before its checkpoint is dropped."""
    out = tmp_path / "out"
    assert run_cli(*GRID, "--out", str(out), "--no-report") == 0
    stale = next(out.glob("runs/*/record.json")).with_name(CHECKPOINT_FILE)
    stale.write_bytes(b"left by a kill")
    assert run_cli(*GRID, "--out", str(out), "--no-report") == 0
    assert f"({RUNS} reused, 0 trained)" in capsys.readouterr().out
    assert not stale.exists()


def test_sigkill_mid_run_then_rerun_reuses_finished_runs_and_resumes_the_checkpoint(tmp_path, uninterrupted):
    out = tmp_path / "out"
    args = [*GRID, "--out", str(out), "--checkpoint-every", "1"]
    proc = start(args, tmp_path)
    # Kill while the second run is mid-way: the first finished, the second saved an epoch.
    wait_for(lambda: 1 <= len(records(out)) < RUNS and list(out.glob(f"runs/*/{CHECKPOINT_FILE}")), proc)
    proc.kill()
    proc.communicate()
    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in records(out)}
    assert 1 <= len(finished) < RUNS
    assert list(out.glob(f"runs/*/{CHECKPOINT_FILE}")), "the run in flight left its checkpoint"

    rerun = run_cli_process(*args, cache=tmp_path / "cache")
    assert rerun.returncode == 0, rerun.stderr
    n = len(finished)
    assert f"reusing {n} finished run(s)" in rerun.stdout
    assert f"({n} reused, {RUNS - n} trained)" in rerun.stdout
    for path, (data, mtime) in finished.items():  # reused, not retrained
        assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
    assert len(records(out)) == RUNS
    assert not list(out.glob(f"runs/*/{CHECKPOINT_FILE}")), "checkpoints are deleted once stored"
    assert leftover_temporaries(out) == []
    assert_same_tables(out, uninterrupted)


def test_sigint_keeps_finished_runs_says_how_to_resume_and_exits_130(tmp_path, uninterrupted):
    out = tmp_path / "out"
    args = [*GRID, "--out", str(out)]
    proc = start(args, tmp_path)
    wait_for(lambda: 1 <= len(records(out)) < RUNS, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    kept = len(records(out))
    assert f"interrupted by SIGINT: kept {kept} of {RUNS} finished run(s) in {out}" in stdout
    assert "run the same command again to resume" in stdout
    assert leftover_temporaries(out) == []
    assert len(read_tables(out)["runs.csv"]) == kept  # tables hold what finished, whole

    rerun = run_cli_process(*args, cache=tmp_path / "cache")
    assert rerun.returncode == 0, rerun.stderr
    assert f"({kept} reused, {RUNS - kept} trained)" in rerun.stdout
    assert_same_tables(out, uninterrupted)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_worker_processes_die_with_the_driver(tmp_path, signum):
    out = tmp_path / "out"
    proc = start(["--archs", "lenet", "--dataset", "digits", "--seeds", "4", "--epochs", "3",
                  "--workers", "2", "--no-report", "--out", str(out)], tmp_path)
    driver = psutil.Process(proc.pid)

    def workers() -> list[psutil.Process]:
        try:
            return [p for p in driver.children(recursive=True)
                    if "spawn_main" in " ".join(p.cmdline())]
        except psutil.Error:
            return []

    # On CPU the driver trains as one of the two workers, so one worker process is spawned.
    wait_for(lambda: len(workers()) == 1, proc)
    children = driver.children(recursive=True)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == [], f"processes outlived the driver: {alive}"
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, stderr
        assert "interrupted by SIGTERM" in stdout and "Traceback" not in stderr
    assert leftover_temporaries(out) == []


def test_rerun_reuses_and_force_retrains(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--archs", "lenet", "--dataset", "digits", "--seed-list", "0", "--epochs", "1",
            "--workers", "1", "--no-report", "--out", str(out)]
    assert run_cli(*args) == 0
    (record,) = records(out)
    before = (record.read_bytes(), record.stat().st_mtime_ns)
    capsys.readouterr()

    assert run_cli(*args) == 0
    text = capsys.readouterr().out
    assert "reusing 1 finished run(s)" in text and "(1 reused, 0 trained)" in text
    assert (record.read_bytes(), record.stat().st_mtime_ns) == before

    assert run_cli(*args, "--force") == 0
    text = capsys.readouterr().out
    assert "reusing" not in text and "(0 reused, 1 trained)" in text
    assert record.stat().st_mtime_ns != before[1]


CHANGES = {
    "arch": "convnet", "dataset": "mnist", "seed": 1, "epochs": 4, "batch_size": 32,
    "optimizer": "sgd", "optimizer_impl": "foreach", "lr": 0.002, "momentum": 0.5, "weight_decay": 1e-4,
    "lr_schedule": "step", "lr_step": 2, "lr_gamma": 0.5, "val_fraction": 0.2, "test_weights": "last", "device": "cuda",
    "dtype": "bfloat16-autocast", "tf32": True, "memory_format": "channels_last", "compile": True,
    "deterministic": True, "stacked": True, "warmup_epochs": 1, "train_fraction": 0.5,
    "aten_stack": True,
}


def test_every_config_field_changes_the_run_id():
    base = RunConfig(arch="lenet", dataset="digits")
    assert set(CHANGES) == set(base.to_dict()), "a new RunConfig field needs a case here"
    ids = {base.run_id()}
    for name, value in CHANGES.items():
        changed = base.replace(**{name: value})
        assert changed.run_id() != base.run_id(), name
        ids.add(changed.run_id())
    assert len(ids) == len(CHANGES) + 1
    assert RunConfig(arch="lenet", dataset="digits").run_id() == base.run_id()  # stable


def test_the_architecture_source_is_part_of_the_run_id(monkeypatch):
    cfg = RunConfig(arch="lenet", dataset="digits")
    before = cfg.run_id()
    monkeypatch.setattr(ArchSpec, "digest", property(lambda self: "edited-source"))
    assert cfg.run_id() != before


# -- --checkpoint-every: an interrupted run ends exactly where an uninterrupted one does --

class StopAfter(Checkpointer):
    """Saves like the real hook, then simulates a crash right after epoch ``stop``."""

    stop = 2

    def epoch_end(self, epoch, *args):
        super().epoch_end(epoch, *args)
        if epoch == self.stop:
            raise KeyboardInterrupt


def _scramble_global_rngs() -> None:
    torch.manual_seed(12345)
    random.seed(12345)
    np.random.seed(12345)


def assert_same_outcome(a, b) -> None:
    metrics = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    assert [{k: e[k] for k in metrics} for e in a.epochs] == [{k: e[k] for k in metrics} for e in b.epochs]
    assert (a.test.loss, a.test.accuracy, a.best_epoch, a.tested_weights) == \
        (b.test.loss, b.test.accuracy, b.best_epoch, b.tested_weights)
    assert (a.test.confusion == b.test.confusion).all()
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_checkpointed_run_resumes_bit_for_bit(tmp_path):
    data = prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")
    # SGD with momentum and a step schedule: optimizer and scheduler state both matter.
    cfg = RunConfig(arch="lenet", dataset="digits", seed=3, epochs=3, optimizer="sgd", lr=0.05,
                    lr_schedule="step", lr_step=1, lr_gamma=0.5)
    reference = train_run(cfg, data)

    plan = CheckpointPlan(str(tmp_path / CHECKPOINT_FILE), every=1)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, data, checkpoint=StopAfter(plan, cfg.run_id()))
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    _scramble_global_rngs()  # what the next process would start with: restored, not reused

    hook = Checkpointer(plan, cfg.run_id())
    resumed = train_run(cfg, data, checkpoint=hook)
    assert hook.resumed_from == 2 and hook.problems == []
    assert [e["epoch"] for e in resumed.epochs] == [1, 2, 3]
    assert_same_outcome(resumed, reference)
    assert leftover_temporaries(tmp_path) == []


def test_a_damaged_checkpoint_is_ignored_and_the_run_starts_over(tmp_path):
    data = prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")
    cfg = RunConfig(arch="lenet", dataset="digits", seed=1, epochs=1)
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(b"not a checkpoint")
    hook = Checkpointer(CheckpointPlan(str(path), every=1), cfg.run_id())
    outcome = train_run(cfg, data, checkpoint=hook)
    assert hook.resumed_from == 0 and "ignored unreadable checkpoint" in hook.problems[0]
    assert_same_outcome(outcome, train_run(cfg, data))



def test_a_run_named_differently_by_its_worker_is_not_stored_as_this_run(tmp_path, monkeypatch):
    """A module edited mid-grid gives a worker another digest: that run fails, clearly."""
    import bench.tasks
    from bench.records import RunRecord

    real = bench.tasks.record_from_outcome

    def renamed(*args, **kwargs) -> RunRecord:
        record = real(*args, **kwargs)
        record.run_id += "-edited"
        return record

    monkeypatch.setattr(bench.tasks, "record_from_outcome", renamed)
    out = tmp_path / "out"
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--seeds", "1", "--epochs", "1",
                   "--workers", "1", "--no-report", "--out", str(out)) == 1
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.status) == ["failed"]
    assert "source changed while the grid ran" in runs.error[0]
    assert not list(out.glob("runs/*-edited"))


def test_restored_optimizer_state_takes_its_parameters_layout():
    """torch's fused Adam pairs parameter and state by memory position: a checkpoint's
    contiguous state beside a channels_last weight must be re-laid out, or steps go wrong."""
    import torch

    from bench.checkpoint import match_parameter_layouts

    torch.manual_seed(0)
    weight = torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    grads = [torch.randn_like(weight) for _ in range(2)]
    results = []
    for reload in (False, True):
        param = torch.nn.Parameter(weight.clone())
        optimizer = torch.optim.Adam([param], lr=0.1, fused=True)
        for step, grad in enumerate(grads):
            param.grad = grad.clone()
            optimizer.step()
            if step == 0 and reload:  # what a checkpoint round trip does to the state
                saved = {k: v.contiguous() if torch.is_tensor(v) else v for k, v in optimizer.state[param].items()}
                optimizer.state[param] = saved
                match_parameter_layouts(optimizer)
                assert optimizer.state[param]["exp_avg"].stride() == param.stride()
        results.append(param.detach().clone())
    assert torch.equal(results[0], results[1])


def test_a_signal_swallowed_on_its_way_still_stops_the_grid_at_the_next_epoch(tmp_path, monkeypatch, capsys):
    """The runner's SIGTERM handler raises in whatever the main thread runs; in a weakref
    callback (an import lock's cleanup, as seen when SIGTERM came while the driver started
    its first run) Python swallows that exception.  The runner raises it again at the next
    epoch event instead of training the rest of the grid, and prints no traceback."""
    import weakref

    import bench.tasks
    from bench.executors import LocalExecutor
    from bench.runner import run_grid
    from bench.tasks import DataRequest

    real = bench.tasks.train_run
    started = []

    def signal_inside_a_callback_then_train(cfg, *args, **kwargs):
        started.append(cfg.seed)
        if len(started) == 1:
            class Lock:
                pass

            lock = Lock()
            ref = weakref.ref(lock, lambda _ref: signal.raise_signal(signal.SIGTERM))
            del lock  # the callback runs now: the handler's Interrupted is raised inside it, and lost
            assert ref() is None
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(bench.tasks, "train_run", signal_inside_a_callback_then_train)
    configs = [RunConfig(arch="lenet", dataset="digits", epochs=2, seed=s) for s in range(3)]
    outcome = run_grid(configs, tmp_path, LocalExecutor(workers=1), DataRequest())
    assert outcome.interrupted is not None and outcome.interrupted.signum == signal.SIGTERM
    assert started == [0] and outcome.records == []  # stopped at the first run's first epoch end
    assert "Traceback" not in capsys.readouterr().err
