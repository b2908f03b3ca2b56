"""Stored runs sent to experiment trackers: MLflow and TensorBoard (optional extras).

Exporters read an output directory's tables and config.json (the stored contract), never
a grid in memory, so any finished or half-finished directory can be exported, any time.
"""
