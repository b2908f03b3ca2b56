"""Evaluations of stored runs: what ``python -m bench evaluate`` and a grid's reused runs get.

A finished run keeps the weights its test set evaluated (``runs/<id>/weights.pt``), so an
evaluation added after the run trained is computed from them, with the same ``Subject`` the
training task builds (``bench.evaluations.subject``), under the run's thread count: the numbers
equal those a fresh grid records.  Each record is rewritten atomically as soon as its
evaluations are done; the caller holds the output folder's lock and rebuilds the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .datasets.prepared import PreparedData, prepare_data
from .datasets.tensors import Dataset
from .records import RunRecord
from .schema import STATUS_OK
from .storage import load_weights, save_record


def missing(record: RunRecord, names: Sequence[str], force: bool = False) -> list[str]:
    """Which of ``names`` a finished run still lacks, or had fail (all of them with ``force``)."""
    if record.status != STATUS_OK:
        return []
    return list(names) if force else [n for n in names if "values" not in record.evaluations.get(n, {})]


def evaluate_records(out: Path, records: Iterable[RunRecord], names: Sequence[str], datasets: dict[str, Dataset],
                     *, force: bool = False, on_run: Callable[[RunRecord, list[str]], None] | None = None) -> int:
    """Run the evaluations each of ``records`` lacks on its stored weights; store each record.

    ``datasets`` holds every dataset the records need, by name.  Returns how many runs were evaluated.
    """
    from .determinism import deterministic_mode
    from .evaluations.subject import eval_set, load_subject, run_evaluations
    from .fast import speedups

    prepared: dict[tuple[str, float, str], PreparedData] = {}
    done = 0
    for record in records:
        todo = missing(record, names, force)
        if not todo:
            continue
        cfg = record.config
        key = (cfg.dataset, cfg.val_fraction, cfg.device)
        if key not in prepared:
            prepared[key] = prepare_data(datasets[cfg.dataset], cfg.val_fraction, cfg.device)
        data = prepared[key]
        with speedups(cfg).threads(), deterministic_mode(cfg.deterministic):
            subject = load_subject(cfg, load_weights(out, record.run_id), data)
            results = run_evaluations(todo, subject, eval_set(data.name, data.test.images, data.test.labels,
                                                              data.classes))
        record.evaluations = {**record.evaluations, **results}
        save_record(out, record)  # no tensors travel with a stored record: only record.json is rewritten
        done += 1
        if on_run is not None:
            on_run(record, todo)
    return done


def save_examples(out: Path, dataset: Dataset, names: Sequence[str]) -> Path | None:
    """Store what each of ``names`` does to a few test images, for the report (``samples``)."""
    from .evaluations import get_evaluation
    from .evaluations.subject import eval_set
    from .samples import save_evaluation_examples

    test = eval_set(dataset.name, dataset.test.images, dataset.test.labels, dataset.classes)
    shown = {n: get_evaluation(n) for n in names if get_evaluation(n).examples is not None}
    if not shown:
        return None
    return save_evaluation_examples(out, dataset, test, shown)
