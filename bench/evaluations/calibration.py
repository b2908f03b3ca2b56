"""Calibration of the tested weights on the whole test split: ECE, NLL and a reliability diagram.

Expected calibration error is torchmetrics' ``multiclass_calibration_error`` (15 equal-width
confidence bins, norm ``l1``): the mean over images of |accuracy - confidence| of their bin.
The negative log-likelihood is ``torch.nn.functional.cross_entropy`` of the logits (the same
quantity as ``test_loss``, summed in another order).  The reliability diagram's bins are
binned as torchmetrics bins them, and stored for the report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .registry import INF, Measured, Output, register_evaluation
from .subject import Subject, EvalSet

BINS = 15


def reliability_bins(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> dict[str, list]:
    """Per confidence bin: images, mean confidence and accuracy (torchmetrics' bucketing)."""
    confidence, predicted = probabilities.max(1)
    right = (predicted == labels).to(torch.float64)
    edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype)
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(0, bins - 1)
    count = torch.bincount(index, minlength=bins).to(torch.float64)
    conf = torch.bincount(index, weights=confidence.to(torch.float64), minlength=bins)
    acc = torch.bincount(index, weights=right, minlength=bins)
    safe = count.clamp_min(1)
    return {"edges": edges.tolist(), "count": count.long().tolist(),
            "confidence": (conf / safe).tolist(), "accuracy": (acc / safe).tolist()}


OUTPUTS = (
    Output("ece", f"expected calibration error on the test split ({BINS} bins, l1; torchmetrics)",
           label="expected calibration error", higher_is_better=False, margin=0.005, compared=True),
    Output("nll", "mean negative log-likelihood of the true class on the test split (nats)",
           label="negative log-likelihood", unit="nats", delta_unit="nats", scale=1.0, high=INF,
           higher_is_better=False, margin=0.01, digits=4, compared=True),
)


@register_evaluation("calibration", outputs=OUTPUTS, description=f"ECE ({BINS} bins), NLL, reliability diagram")
def calibration(subject: Subject, test: EvalSet) -> Measured:
    from torchmetrics.functional.classification import multiclass_calibration_error

    logits = subject.clean_logits(test)
    labels = test.labels.cpu()
    probabilities = logits.softmax(1)
    ece = multiclass_calibration_error(probabilities, labels, num_classes=logits.shape[1], n_bins=BINS, norm="l1")
    nll = nnf.cross_entropy(logits.double(), labels)
    return Measured({"ece": float(ece), "nll": float(nll)},
                    details={"reliability": reliability_bins(probabilities, labels)})
