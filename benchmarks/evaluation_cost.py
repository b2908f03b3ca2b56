"""Seconds per run of each evaluation on a stored grid's first run, cold (the first run of a
process: corrupted and shifted images are made) and warm (every later run of that process).

    python benchmarks/evaluation_cost.py OUT [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.commands.evaluate import load_recorded_datasets
from bench.datasets.prepared import prepare_data
from bench.evaluations import default_evaluations, get_evaluation
from bench.evaluations.subject import eval_set, load_subject
from bench.fast import speedups
from bench.storage import load_record, load_weights, read_invocation


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    out = Path(args.out)
    invocation = read_invocation(out)
    record = next(r for r in (load_record(out, i) for i in invocation["run_ids"]) if r and r.status == "ok")
    cfg = record.config
    dataset = load_recorded_datasets(invocation, [cfg.dataset], args.data_dir)[cfg.dataset]
    data = prepare_data(dataset, cfg.val_fraction, cfg.device)
    weights = load_weights(out, record.run_id)
    with speedups(cfg).threads():
        for label in ("cold", "warm"):
            subject = load_subject(cfg, weights, data)
            test = eval_set(data.name, data.test.images, data.test.labels, data.classes)
            times = {}
            for name in default_evaluations():
                t0 = time.perf_counter()
                get_evaluation(name).evaluate(subject, test)
                times[name] = time.perf_counter() - t0
            print(f"{cfg.arch} on {cfg.dataset}, {label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
                  + f"; total {sum(times.values()):.2f} s; "
                  f"the run's epoch {record.summary['mean_epoch_seconds']:.1f} s")


if __name__ == "__main__":
    main()
