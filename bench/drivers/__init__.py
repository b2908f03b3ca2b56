"""Drivers: ways of training several runs' steps at once around ``bench.train``'s loop.

Each run keeps its own ``bench.train.RunLoop`` (order, evaluation, records, checkpoints);
a driver only steps the runs together.  Drivers import the loop, never the reverse, and
``bench.planner`` decides, once per grid, which runs a driver gets.

- ``seed_group``: runs that differ only in seed, one CUDA graph with a branch per run (bits as alone).
- ``stacked`` / ``stacked_training``: seeds stacked into one wide network (``--stack-seeds``),
  a recorded part of each run's config (other last bits than alone).
"""
