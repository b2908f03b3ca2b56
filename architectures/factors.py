"""Factors spelled out: the report names "conv: dil vs std" as dilated against standard convolutions.

A factorial family's networks carry machine-readable levels (``register_model(factors=...)``);
this module says what each factor and level means in plain words.  It is prose, kept out of the
family modules so that wording a level never changes a network's digest (its run ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_FACTORS: dict[str, tuple[str, dict[str, str]]] = {}


def describe_factor(factor: str, words: str, levels: Mapping[str, str]) -> None:
    """Spell out ``factor`` and its levels (added to any described before)."""
    known = dict(_FACTORS.get(factor, (words, {}))[1])
    known.update(levels)
    _FACTORS[factor] = (words, known)


def factor_glossary(factors: Iterable[str]) -> dict[str, dict[str, object]]:
    """``{factor: {"name": words, "levels": {level: words}}}`` for the described ones of ``factors``."""
    return {f: {"name": _FACTORS[f][0], "levels": dict(_FACTORS[f][1])}
            for f in sorted(set(factors)) if f in _FACTORS}


# The ablation family (architectures/ablation.py).
describe_factor("conv", "convolution", {"std": "standard 3x3 convolutions",
                                        "dil": "dilated 3x3 convolutions (dilation 2)"})
describe_factor("downsample", "downsampling", {"max": "2x2 max-pooling", "avg": "2x2 average-pooling",
                                               "stride": "a strided 3x3 convolution"})
