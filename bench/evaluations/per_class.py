"""Per-class precision, recall and F1 of the tested weights on the whole test split, and macro-F1.

scikit-learn's ``precision_recall_fscore_support`` (a class never predicted has precision 0,
``zero_division=0``); macro-F1 is their unweighted mean over classes, a compared metric.
"""

from __future__ import annotations

import numpy as np

from .registry import Measured, Output, register_evaluation
from .subject import Subject, EvalSet

OUTPUTS = (
    Output("macro_f1", "unweighted mean over classes of the test split's per-class F1 (scikit-learn)",
           label="macro-F1", margin=0.0025, compared=True),
    Output("precision_class_<i>", "test precision of class i: right among the images predicted i",
           label="precision of a class"),
    Output("recall_class_<i>", "test recall of class i: right among the images of class i", label="recall of a class"),
    Output("f1_class_<i>", "test F1 of class i: harmonic mean of its precision and recall", label="F1 of a class"),
)


@register_evaluation("per_class", outputs=OUTPUTS, description="per-class precision, recall and F1; macro-F1")
def per_class(subject: Subject, test: EvalSet) -> Measured:
    from sklearn.metrics import precision_recall_fscore_support

    predicted = subject.clean_logits(test).argmax(1).numpy()
    labels = test.labels.cpu().numpy()
    classes = list(range(len(test.classes)))
    precision, recall, f1, _support = precision_recall_fscore_support(labels, predicted, labels=classes,
                                                                     zero_division=0.0)
    values = {"macro_f1": float(np.mean(f1))}
    for i in classes:
        values.update({f"precision_class_{i}": float(precision[i]), f"recall_class_{i}": float(recall[i]),
                       f"f1_class_{i}": float(f1[i])})
    return Measured(values)
