"""``bench perf``: how fast cnnbench trains, against the tutorial recipe it replaces.

``recipe`` times torchvision Dataset + DataLoader training, ``native`` times cnnbench's own
training steps, ``roof`` measures the machine's fp32 matmul FLOP/s, ``table`` turns those
timings into the comparison table.
"""

from .table import PerfTiming, perf_table

DEFAULT_ARCHS = ("lenet-12", "lenet", "convnet", "dilated", "bn-convnet")

__all__ = ["DEFAULT_ARCHS", "PerfTiming", "perf_table"]
