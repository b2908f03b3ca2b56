"""The local executor's pool: the driver trains as one of the CPU workers."""

from __future__ import annotations

from bench.config import RunConfig
from bench.executors.local import LocalExecutor
from bench.tasks import DataRequest, RunTask


def test_two_workers_give_every_run_with_the_same_bits_as_one():
    tasks = [RunTask(RunConfig(arch=a, dataset="digits", seed=s, epochs=1), DataRequest())
             for a in ("lenet-12", "lenet") for s in (0, 1)]
    events = []
    serial = {r.run_id: r for r in LocalExecutor(workers=1).run(tasks)}
    pooled = {r.run_id: r for r in LocalExecutor(workers=2).run(tasks, lambda cfg, rec: events.append(cfg))}
    assert pooled.keys() == serial.keys() == {t.config.run_id() for t in tasks}
    for run_id, record in pooled.items():
        assert record.status == "ok"
        timing = ("seconds", "per_s")
        metrics = {k: v for k, v in record.summary.items() if not k.endswith(timing)}
        assert metrics and metrics == {k: v for k, v in serial[run_id].summary.items() if not k.endswith(timing)}
    assert sorted(c.run_id() for c in events) == sorted(t.config.run_id() for t in tasks)  # one epoch each
