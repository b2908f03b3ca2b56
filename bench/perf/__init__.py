"""``bench perf``: how fast cnnbench trains, against the tutorial recipe it replaces.

``recipe`` times torchvision Dataset + DataLoader training, ``native`` times cnnbench's own
training steps, ``machine`` runs one trainer per core at once, ``roof`` measures the
machine's fp32 matmul FLOP/s, ``table`` turns those timings into the comparison table, and
``grid`` times a finished grid against the same runs trained one after another.
"""

DEFAULT_ARCHS = ("lenet-12", "lenet", "convnet", "dilated", "bn-convnet")
