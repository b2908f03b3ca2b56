"""The candidate points: asked once from Optuna's seeded, scrambled Sobol sampler.

Every architecture trains the same points (paired tuning, as AlgoPerf's quasi-random
search).  The study lives in an RDB (SQLite in --out by default), so a re-run, or another
bench sharing the URL, gets the same points back and an enlarged budget continues the
sequence.  Each point is one trial; once the architectures trained it, it is told the mean
of their validation accuracies, and each one's own is kept as a user attribute.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings

from .space import SearchSpace

ROLE = "role"  # user attribute: "point" (a candidate) or "space" (see candidate_points)


def _optuna():
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)  # no line per study or trial on the console
    return optuna


def study_name(space: SearchSpace, seed: int) -> str:
    digest = hashlib.sha256(f"{space.text()} sobol seed {seed}".encode()).hexdigest()[:10]
    return f"cnnbench-points-{digest}"


def open_study(storage: str, space: SearchSpace, seed: int):
    optuna = _optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # QMCSampler is "experimental"
        sampler = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                             warn_independent_sampling=False)
    study = optuna.create_study(storage=storage, study_name=study_name(space, seed), sampler=sampler,
                                direction="maximize", load_if_exists=True)
    study.set_user_attr("space", space.text())
    return study


def candidate_points(storage: str, space: SearchSpace, n: int, seed: int) -> list[dict]:
    """The first ``n`` points of the study (asked now if the study holds fewer), in order."""
    study = open_study(storage, space, seed)
    distributions = space.distributions()
    points = _points(study)
    if len(points) < n:
        # QMCSampler draws a study's first trial from its independent (random) sampler and
        # learns the space from it; a placeholder trial takes that draw, so that every
        # point is a Sobol point.  It stays running while points are asked, then fails.
        placeholders = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROLE) == "space"]
        if not placeholders and not points:
            placeholder = study.ask(distributions)
            placeholder.set_user_attr(ROLE, "space")
            placeholders = [placeholder]
        while len(points) < n:
            trial = study.ask(distributions)
            trial.set_user_attr(ROLE, "point")
            points.append(trial.params)
        for placeholder in placeholders:
            _fail_if_running(study, placeholder.number)
    return [dict(p) for p in points[:n]]


def _points(study) -> list[dict]:
    trials = sorted((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROLE) == "point"),
                    key=lambda t: t.number)
    return [t.params for t in trials]


def _fail_if_running(study, number: int) -> None:
    optuna = _optuna()
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state == optuna.trial.TrialState.RUNNING:
        study.tell(number, state=optuna.trial.TrialState.FAIL)


def record_values(storage: str, space: SearchSpace, seed: int, values: dict[int, dict[str, float]]) -> None:
    """Tell each point (by its index) the mean of its architectures' validation accuracies,
    keeping each one's as a user attribute; a point told before keeps what it was told."""
    optuna = _optuna()
    study = open_study(storage, space, seed)
    trials = sorted((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROLE) == "point"),
                    key=lambda t: t.number)
    for index, by_arch in values.items():
        trial = trials[index]
        finite = [v for v in by_arch.values() if math.isfinite(v)]
        if trial.state != optuna.trial.TrialState.RUNNING:
            continue
        running = optuna.trial.Trial(study, trial._trial_id)
        for key, value in by_arch.items():
            running.set_user_attr(f"val_acc:{key}", value)
        if finite:
            study.tell(trial.number, sum(finite) / len(finite))
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
