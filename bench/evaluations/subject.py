"""What an evaluation is given: the tested weights (``Subject``) and the test split (``EvalSet``).

Both paths that evaluate a run build the same ``Subject``: the training task right after
training (``bench.tasks``) and ``python -m bench evaluate`` from ``runs/<id>/weights.pt``.
It is the network as the run tested it (its memory format, its build-time rewrites, its
evaluation batch, its autocast), so that both give the same numbers.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..errors import BenchError
from .registry import Measured, get_evaluation
from .stored import encode

SALT = "cnnbench-evaluations-v1"  # changing it changes every evaluation's images: bump with care
SUBSET = 2000  # test images the costlier evaluations (shift, corruptions) use; all when fewer


def stable_seed(*parts: object) -> int:
    """A seed from names, the same in every process (``hash()`` is salted per process)."""
    return zlib.crc32(":".join(map(str, (SALT, *parts))).encode())


@dataclass
class EvalSet:
    """The test split, uint8 (N, C, H, W) with its labels, and the per-dataset fixed randomness."""

    dataset: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def generator(self, purpose: str) -> torch.Generator:
        """A CPU generator seeded from the dataset and ``purpose``: each image's parameters are
        the same in every call, process and run."""
        return torch.Generator().manual_seed(stable_seed(self.dataset, purpose))

    def subset(self, size: int = SUBSET) -> torch.Tensor:
        """Fixed indices of ``size`` test images (in order), or all of them when there are fewer."""
        n = len(self.labels)
        if size >= n:
            return torch.arange(n)
        return torch.randperm(n, generator=self.generator(f"subset-{size}"))[:size].sort().values

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """What ``make`` gives, made once per test set: images that do not depend on the network."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


_TEST_SETS: dict[tuple[str, int, str], EvalSet] = {}


def eval_set(dataset: str, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> EvalSet:
    """The process's one ``EvalSet`` of ``images``, so its corrupted copies are made once per process."""
    key = (dataset, images.data_ptr(), str(images.device))
    if key not in _TEST_SETS:
        _TEST_SETS[key] = EvalSet(dataset, images, labels, tuple(classes))
    return _TEST_SETS[key]


class Subject:
    """A trained network as evaluations see it: logits of uint8 images, in eval mode, no grad."""

    def __init__(self, model: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor],
                 memory_format: torch.memory_format, batch: int, device: str,
                 autocast: Callable[[], Any]) -> None:
        self.model, self.normalize, self.memory_format = model, normalize, memory_format
        self.batch, self.device, self.autocast = batch, device, autocast
        self._clean: dict[int, torch.Tensor] = {}

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits (N, classes) on the CPU, in batches of the run's evaluation batch."""
        out = []
        for start in range(0, len(images), self.batch):
            x = self.normalize(images[start:start + self.batch].to(self.device))
            with self.autocast():
                out.append(self.model(x.contiguous(memory_format=self.memory_format)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(1)

    def clean_logits(self, test: EvalSet) -> torch.Tensor:
        """Logits of the whole test split, computed once per subject (calibration, per-class)."""
        key = id(test)
        if key not in self._clean:
            self._clean[key] = self.logits(test.images)
        return self._clean[key]


def load_subject(cfg: RunConfig, state_dict: dict[str, torch.Tensor], data) -> Subject:
    """The network of ``cfg`` with ``state_dict``, built as ``bench.train`` builds it."""
    from architectures import get_spec

    from ..fast import speedups
    from ..train import autocast

    policy = speedups(cfg)
    model = get_spec(cfg.arch).build(in_channels=data.in_channels, num_classes=len(data.classes),
                                     image_size=data.image_size)
    memory_format = policy.memory_format(model)
    model = model.to(device=torch.device(cfg.device), memory_format=memory_format)
    policy.prepare(model, memory_format)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise BenchError(f"the stored weights of {cfg.run_id()} do not fit {cfg.arch}: "
                         f"{str(exc).splitlines()[0]}") from None
    model.eval()
    return Subject(model, data.normalize, memory_format, policy.eval_batch, cfg.device, lambda: autocast(cfg))


def run_evaluations(names: Sequence[str], subject: Subject, test: EvalSet) -> dict[str, dict[str, Any]]:
    """Each named evaluation of ``subject``, as the record stores it (``stored.encode``).

    An evaluation that fails (a network that cannot take a corrupted input, say, or one this
    process has not registered) is stored with its error; the run itself stays finished.
    """
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.perf_counter()
        try:
            evaluation = get_evaluation(name)  # one this process does not know (a driver's own) fails alone
            measured = evaluation.evaluate(subject, test)
        except (BenchError, RuntimeError, ValueError) as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - started}
            continue
        check(evaluation, measured)
        results[name] = encode(measured, time.perf_counter() - started)
    return results


def check(evaluation, measured: Measured) -> None:
    """Every number an evaluation returns is one it declared (else runs.csv could not hold it)."""
    unknown = [c for c in [*measured.values, *measured.per_image] if evaluation.output(c) is None]
    assert not unknown, f"evaluation {evaluation.name} returned undeclared column(s) {unknown}"
