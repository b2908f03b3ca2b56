"""Evaluations of a run's tested weights beyond clean accuracy (docs/evaluations.md).

Importing the package registers the built-ins: ``shift``, ``corruptions``, ``calibration`` and
``per_class``.  Another evaluation is one function with ``register_evaluation`` in any
module imported before the tables are written (``bench.evaluations.registry``).
"""

# The built-ins register in this order, their columns' order in runs.csv.
from . import shift  # noqa: F401, I001
from . import corruptions  # noqa: F401
from . import calibration  # noqa: F401
from . import per_class  # noqa: F401
from .registry import (
    EVALUATIONS, Evaluation, Measured, Output, compared_outputs, default_evaluations, get_evaluation,
    output_of, register_evaluation, register_metrics, resolve_evaluations, unregister_evaluation,
)

__all__ = ["EVALUATIONS", "Evaluation", "Measured", "Output", "compared_outputs", "default_evaluations",
           "get_evaluation", "output_of", "register_evaluation", "register_metrics", "resolve_evaluations",
           "unregister_evaluation"]
