"""The answer's recommendation: the rule of bench/report/recommend.py on grids with known verdicts."""

import math

import pandas as pd

from bench.report.recommend import recommend, until_decided, with_epochs
from bench.stats import compare_table

COMMAND = 'python -m bench --archs a,b,c --dataset mnist --seed-list 0,1,2 --epochs 5 --out "$OUT" --margin 0.25'


def _grid(per_seed: dict[str, list[float]], epoch_seconds: dict[str, float], params=None):
    results = {a: pd.Series(v, index=range(len(v))) for a, v in per_seed.items()}
    against = {a: compare_table(results, a, order=list(results)) for a in results}
    board = pd.DataFrame([{"arch": a, "mean": float(sum(v) / len(v)), "mean_epoch_seconds": epoch_seconds[a],
                           "params": (params or {}).get(a, 1000), "seeds": len(v)} for a, v in per_seed.items()])
    return board, against


def test_equivalent_networks_the_cheapest_is_recommended_firmly():
    # Differences of a few hundredths of a pp that vary by seed: every pair is equivalent within ±0.25 pp.
    board, against = _grid({"a": [0.9900, 0.9905, 0.9898, 0.9903], "b": [0.9902, 0.9904, 0.9901, 0.9903],
                            "c": [0.9899, 0.9907, 0.9898, 0.9901]}, {"a": 12.0, "b": 15.0, "c": 10.0})
    assert {c.verdict for cs in against.values() for c in cs} == {"equivalent"}
    r = recommend(board, against, {"a": 30.0, "b": 40.0, "c": 25.0}, 0.985, 0.0025, COMMAND, False)
    assert r.arch == "c" and r.next_steps == ()
    assert r.text == ("Use c: no network is more accurate (the others are equivalent within ±0.25 pp or less "
                      "accurate), and of those it has the fastest epochs (10.0 s) and reaches 98.50% validation "
                      "accuracy first (25.0 s, median).")


def test_a_decided_leader_is_recommended_whatever_it_costs():
    board, against = _grid({"a": [0.990, 0.991, 0.989], "b": [0.970, 0.972, 0.968]}, {"a": 50.0, "b": 5.0})
    assert against["a"][0].verdict == "worse"
    r = recommend(board, against, {}, None, 0.0025, COMMAND, False)
    assert r.arch == "a"
    least = min(-c.ci_high for c in against["a"])  # b minus a, at its most favourable end for b
    assert r.text == f"Use a: it is more accurate than every other network (by at least {least * 100:.2f} pp)."


def test_an_undecided_rival_with_a_higher_mean_gives_the_command_that_settles_it():
    board, against = _grid({"a": [0.990, 0.994, 0.986], "b": [0.992, 0.993, 0.989]}, {"a": 10.0, "b": 20.0})
    (b_vs_a,) = against["a"]
    assert b_vs_a.verdict == "undecided" and b_vs_a.seeds_needed is not None
    r = recommend(board, against, {}, None, 0.0025, COMMAND, False)
    assert r.arch == "a" and "Still open: b has a higher mean, undecided" in r.text
    (step,) = r.next_steps
    assert step == (until_decided(COMMAND, 3, b_vs_a.seeds_needed), "would settle it")
    assert step[0].endswith(f"--seeds 3 --until-decided --max-seeds {3 * math.ceil(b_vs_a.seeds_needed / 3)}")
    assert "--seed-list" not in step[0] and '--out "$OUT"' in step[0]


def test_too_few_seeds_recommend_nothing_and_say_what_to_run():
    board, against = _grid({"a": [0.99, 0.98], "b": [0.97, 0.975]}, {"a": 1.0, "b": 2.0})
    r = recommend(board, against, {}, None, 0.0025, COMMAND, False)
    assert r.arch is None and r.text.startswith("No recommendation yet: 2 seeds per network")
    assert r.command.endswith("--seeds 3") and "--seed-list" not in r.command


def test_still_improving_adds_the_command_with_twice_the_epochs():
    board, against = _grid({"a": [0.9900, 0.9905, 0.9898, 0.9903], "b": [0.9902, 0.9904, 0.9901, 0.9903]},
                           {"a": 1.0, "b": 2.0})
    r = recommend(board, against, {}, None, 0.0025, COMMAND, True)
    assert r.next_steps[-1] == (with_epochs(COMMAND, 2), "would show whether more training changes this")
    assert "--epochs 10" in r.next_steps[-1][0] and "--epochs 5" not in r.next_steps[-1][0]


def test_one_network_has_nothing_to_recommend_against():
    board, against = _grid({"a": [0.99, 0.98, 0.97]}, {"a": 1.0})
    assert recommend(board, against, {}, None, 0.0025, COMMAND, False) is None
