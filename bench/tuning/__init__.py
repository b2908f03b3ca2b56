"""The tuning stage before a comparison: each architecture at its own tuned best, chosen on
validation accuracy from the same quasi-random candidate points (docs/protocol.md).

Modules: ``options`` (the CLI's), ``space``, ``study`` (Optuna), ``selection``, ``stage``
(the driver's part), ``expected_max`` (Dodge et al.'s estimator), ``protocol`` (the answer
box's phrase).  Nothing is imported here, so ``--help`` stays quick.
"""
