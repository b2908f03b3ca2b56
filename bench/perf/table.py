"""The perf table: images/s of each path, their ratio, and the share of the FLOP roof.

Two cnnbench figures: one run (one thread on CPU) and the machine (one trainer per core,
all at once, as a grid trains); the recipe trains one run on every core either way.

Every derived column is computed here from raw timings (images, seconds), so the printed
and stored figures can always be re-derived from what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import gmean

GEOMEAN_ROW = "geometric mean"


@dataclass(frozen=True)
class PerfTiming:
    """What was measured for one architecture: images trained and seconds taken, per path."""

    arch: str
    recipe_images: int
    recipe_seconds: float
    native_images: int
    native_seconds: float
    flops_per_image: int  # training (forward + backward) FLOPs per image
    memory_format: str = ""
    step_mode: str = ""  # how one run steps: "cuda-graph" or "eager" (bench.cuda_graph)
    machine_step_mode: str = ""  # how the per-machine runs stepped: "stacked" with --stack-seeds
    # Per machine: images all trainers trained together (one per core, as a grid trains)
    # and the seconds the slowest of them took; ``workers`` trainers.
    machine_images: int = 0
    machine_seconds: float = float("nan")
    workers: int = 1

    @property
    def runs_cost_vs_one(self) -> float:
        """The time ``workers`` runs take at once (per machine) over the time one takes alone."""
        return self.workers * (self.native_images / self.native_seconds) / (self.machine_images / self.machine_seconds)

    @property
    def runs_cost_vs_alone(self) -> float:
        """The time ``workers`` runs take at once over the time they take one after another."""
        return self.runs_cost_vs_one / self.workers


def perf_table(timings: list[PerfTiming], roof_flops_per_s: float,
               machine_roof_flops_per_s: float | None = None) -> pd.DataFrame:
    """One row per architecture plus a last row holding the geometric mean of the ratios.

    ``roof_flops_per_s``: the roof on the threads one run uses (one on CPU), which the per-run
    figure is a share of; ``machine_roof_flops_per_s``: on every thread, for the per-machine
    figure (the same roof where they are the same, as on a GPU).
    """
    machine_roof = roof_flops_per_s if machine_roof_flops_per_s is None else machine_roof_flops_per_s
    rows = []
    for t in timings:
        recipe = t.recipe_images / t.recipe_seconds
        native = t.native_images / t.native_seconds
        machine = t.machine_images / t.machine_seconds
        rows.append({
            "arch": t.arch,
            "recipe_images_per_s": recipe,
            "cnnbench_images_per_s": native,
            "speedup": native / recipe,
            "train_mflops_per_image": t.flops_per_image / 1e6,
            "cnnbench_gflops_per_s": t.flops_per_image * native / 1e9,
            "roof_fraction": t.flops_per_image * native / roof_flops_per_s,
            "workers": t.workers,
            "machine_images_per_s": machine,
            "machine_speedup": machine / recipe,
            "machine_gflops_per_s": t.flops_per_image * machine / 1e9,
            "machine_roof_fraction": t.flops_per_image * machine / machine_roof,
            "runs_cost_vs_one": t.runs_cost_vs_one,
            "runs_cost_vs_alone": t.runs_cost_vs_alone,
            "memory_format": t.memory_format,
            "step_mode": t.step_mode,
            "machine_step_mode": t.machine_step_mode,
            "recipe_images": t.recipe_images,
            "recipe_seconds": t.recipe_seconds,
            "cnnbench_images": t.native_images,
            "cnnbench_seconds": t.native_seconds,
            "machine_images": t.machine_images,
            "machine_seconds": t.machine_seconds,
        })
    table = pd.DataFrame(rows)
    if rows:
        summary = {column: np.nan for column in table.columns}
        summary.update(arch=GEOMEAN_ROW, memory_format="", step_mode="", machine_step_mode="",
                       speedup=float(gmean(table["speedup"])),
                       machine_speedup=float(gmean(table["machine_speedup"])))
        table = pd.concat([table, pd.DataFrame([summary])], ignore_index=True)
    table["roof_gflops_per_s"] = roof_flops_per_s / 1e9
    table["machine_roof_gflops_per_s"] = machine_roof / 1e9
    return table
