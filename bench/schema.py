"""The stored schema, declared once: the columns of runs.csv, epochs.csv and confusion.csv.

Everything else derives from these declarations: the rows a ``RunRecord`` writes, the
report loader's checks and number conversions, the column tables of docs/output-format.md
(``python -m bench.schema`` prints them) and the tests.  Adding a metric is one ``Column``
here plus the code that computes it; an evaluation (``bench.evaluations``) declares its own
``runs.csv`` columns with it, and ``RUNS`` lists them after the fixed ones.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, fields
from typing import Literal

from .config import RunConfig

# 2: records hold which test images the run classified right (``test_correct``), and may hold
# ``evaluations`` (bench.evaluations; records without them read as having run none).
RECORD_VERSION = 2

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_DIVERGED, STATUS_FAILED)

Kind = Literal["text", "int", "float", "bool"]
NUMERIC: tuple[Kind, ...] = ("int", "float")


@dataclass(frozen=True)
class Column:
    name: str  # a pattern such as ``factor_<name>`` stands for a family of columns
    kind: Kind
    doc: str
    required: bool = False  # every reader relies on it: a table without it is not ours
    varies: bool = False  # differs between two runs of one config: wall-clock times, the machine

    @property
    def pattern(self) -> re.Pattern | None:
        """For a family like ``class_acc_<i>``, the regular expression its members match."""
        head, bracket, rest = self.name.partition("<")
        if not bracket:
            return None
        return re.compile(re.escape(head) + ".+" + re.escape(rest.partition(">")[2]) + "$")

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC


@dataclass(frozen=True)
class Table:
    file: str
    fixed: tuple[Column, ...]
    # Columns declared by other modules (each evaluation declares its own, bench.evaluations),
    # by owner, after the fixed ones; ``extension`` is the module whose import declares them.
    declared: dict[str, tuple[Column, ...]] = field(default_factory=dict, compare=False, hash=False)
    extension: str | None = None

    @property
    def columns(self) -> tuple[Column, ...]:
        if self.extension is not None:
            importlib.import_module(self.extension)  # once: then it is in sys.modules
        return self.fixed + tuple(c for owned in self.declared.values() for c in owned)

    @property
    def names(self) -> list[str]:
        """The fixed column names, in order (families like ``factor_<name>`` excluded)."""
        return [c.name for c in self.columns if c.pattern is None]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column | None:
        """The declaration ``name`` belongs to (itself, or the family it is a member of)."""
        for column in self.columns:
            if column.name == name or (column.pattern is not None and column.pattern.match(name)):
                return column
        return None

    def numeric(self, present: list[str]) -> list[str]:
        """Those of ``present`` that hold numbers."""
        return [n for n in present if (c := self.column(n)) is not None and c.numeric]


KEY = (
    Column("run_id", "text", "the run's name: architecture, dataset, seed and a hash of its config "
                             "and its network's code", required=True),
    Column("arch", "text", "the architecture's registered name", required=True),
    Column("dataset", "text", "the dataset's name", required=True),
    Column("seed", "int", "the run's seed (model init, data order, dropout)", required=True),
)

CONFIG_DOCS = {
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "optimizer": "sgd, adam or adadelta",
    "lr": "learning rate",
    "momentum": "SGD momentum (unused by the others)",
    "weight_decay": "L2 weight decay",
    "optimizer_impl": "fused (torch's one-kernel step) or foreach (torch's default loop's bits)",
    "lr_schedule": "none, step, cosine (linear warm-up, then cosine decay) or onecycle, stepped per epoch",
    "lr_step": "epochs between decays of the step schedule",
    "lr_gamma": "decay factor of the step schedule",
    "warmup_epochs": "epochs of linear warm-up of the cosine schedule",
    "val_fraction": "stratified share of the training set held out for validation",
    "test_weights": "best-val or last: which weights the test set evaluated (as asked)",
    "device": "cpu, cuda or cuda:N",
    "dtype": "float32 or bfloat16-autocast",
    "tf32": "TF32 matmuls allowed (CUDA)",
    "memory_format": "activation layout the run trained in (the config's auto resolved by a fixed rule)",
    "compile": "the model was torch.compile'd",
    "deterministic": "deterministic kernels only",
    "stacked": "trained in a stack of seeds (--stack-seeds): same arithmetic, other last bits than alone",
    "aten_stack": "a CPU stack computed by aten's kernels, not bench.fast's numba ones (numba missing): other bits",
    "train_fraction": "share of the training split each epoch trained on (tuning trials; 1: all)",
}


def _kind(default: object) -> Kind:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "text"


CONFIG = tuple(
    Column(f.name, _kind(f.default), CONFIG_DOCS[f.name])
    for f in fields(RunConfig) if f.name not in {k.name for k in KEY}
)

OUTCOME = (
    Column("status", "text", "ok, diverged (a loss became non-finite) or failed (see error)", required=True),
    Column("error", "text", "why a run diverged or failed; empty when ok"),
    Column("learning", "bool", "an ok run's best validation or test accuracy cleared chance (the largest test "
                               "class's share) by a tenth of the way to 1; False: stuck at chance; empty otherwise"),
    Column("family", "text", "the architecture's family"),
    Column("factor_<name>", "text", "the architecture's level of each ablation factor, e.g. factor_conv"),
    Column("params", "int", "trainable parameters"),
    Column("flops_per_image", "int", "training FLOPs per image, forward + backward (torch's FlopCounterMode)"),
    Column("arch_digest", "text", "digest of the code that builds the network"),
    Column("tested_weights", "text", "best-val or last: the weights the test set evaluated"),
    Column("best_epoch", "int", "the epoch whose weights were tested"),
    Column("best_val_acc", "float", "validation accuracy of the tested weights"),
    Column("best_val_loss", "float", "validation loss of the tested weights"),
    Column("final_train_loss", "float", "training loss of the last epoch"),
    Column("final_train_acc", "float", "training accuracy of the last epoch"),
    Column("final_val_loss", "float", "validation loss of the last epoch"),
    Column("final_val_acc", "float", "validation accuracy of the last epoch"),
    Column("test_loss", "float", "mean test cross-entropy of the tested weights"),
    Column("test_acc", "float", "test accuracy of the tested weights"),
    Column("diverged_epoch", "int", "the epoch whose loss became non-finite (0: none)"),
    Column("epochs_run", "int", "epochs trained"),
    Column("total_seconds", "float", "wall time of the run, from building the model to the test", varies=True),
    Column("train_seconds", "float", "training time, evaluation excluded", varies=True),
    Column("mean_epoch_seconds", "float", "mean training time of an epoch", varies=True),
    Column("train_images_per_s", "float", "training images per second", varies=True),
    Column("step_mode", "text", "how full batches stepped: eager, cuda-graph (a replayed CUDA graph) or stacked "
                                 "(one wide network for a stack of seeds)"),
    Column("seed_group", "int", "runs trained together (a seed group, or a stack's part), itself included (1: alone)"),
    Column("stacked_with", "text", "a stacked run: the seeds of the stack (part) it trained in, which fix "
                                   "its last bits, e.g. 0,1,2,3"),
    Column("epochs_to_target", "float", "epochs until validation accuracy first reached the grid's target "
                                        "(config.json: analysis.target); inf when it never did"),
    Column("seconds_to_target", "float", "training seconds until then; inf when never", varies=True),
    Column("class_acc_<i>", "float", "test accuracy on class i"),
    Column("nondeterministic_ops", "text", "--deterministic grids: ops that had no deterministic kernel"),
)

ENVIRONMENT = tuple(Column(c.name, c.kind, c.doc, varies=True) for c in (
    Column("torch_version", "text", "torch's version"),
    Column("python_version", "text", "Python's version"),
    Column("device_name", "text", "the GPU's or CPU's name"),
    Column("cpu_threads", "int", "torch threads the run trained with"),
    Column("cpu_count", "int", "the machine's cores"),
    Column("hostname", "text", "the machine that trained the run"),
    Column("git_commit", "text", "cnnbench's commit (-dirty: with uncommitted changes)"),
))

EPOCH_METRICS = (
    Column("epoch", "int", "1, 2, ...", required=True),
    Column("train_loss", "float", "mean training cross-entropy of the epoch's batches, as trained", required=True),
    Column("train_acc", "float", "training accuracy of the epoch's batches, as trained", required=True),
    Column("val_loss", "float", "validation loss after the epoch (empty without a validation split)",
           required=True),
    Column("val_acc", "float", "validation accuracy after the epoch", required=True),
    Column("lr", "float", "the epoch's learning rate"),
    Column("train_seconds", "float", "training time of the epoch", required=True, varies=True),
    Column("eval_seconds", "float", "validation time after the epoch", varies=True),
    Column("train_images_per_s", "float", "training images per second", varies=True),
)

CONFUSION_CELLS = (
    Column("true", "int", "true class index (names: config.json, datasets.<name>.classes)", required=True),
    Column("predicted", "int", "predicted class index", required=True),
    Column("count", "int", "test images with that true and predicted class", required=True),
)

RUNS = Table("runs.csv", (*KEY, *CONFIG, *OUTCOME, *ENVIRONMENT), extension="bench.evaluations")
EPOCHS = Table("epochs.csv", (*KEY, *EPOCH_METRICS))
CONFUSION = Table("confusion.csv", (*KEY, *CONFUSION_CELLS))
TABLES = (RUNS, EPOCHS, CONFUSION)

# The tuning stage's trials (written by bench.tuning when a grid was tuned; absent otherwise).
# Only validation accuracy is here: the choice never sees the test set.
TUNING = Table("tuning.csv", (
    Column("dataset", "text", "the dataset's name", required=True),
    Column("arch", "text", "the architecture's registered name", required=True),
    Column("trial", "int", "the candidate point: 0, 1, ... (the same points for every architecture)", required=True),
    Column("seed", "int", "the trial's own seed, disjoint from the comparison's"),
    Column("run_id", "text", "the trial's run, stored in tuning/runs/<run_id>"),
    Column("status", "text", "ok, diverged or failed"),
    Column("learning", "bool", "the trial cleared chance accuracy (see runs.csv)"),
    Column("param_<name>", "float", "the candidate point's value of each tuned field, e.g. param_lr"),
    Column("val_acc", "float", "the trial's best validation accuracy: what the choice compares", required=True),
    Column("seconds", "float", "the trial's wall time", varies=True),
    Column("chosen", "bool", "this trial's point is the architecture's choice (highest mean val_acc over "
                             "its seeds; ties: the lower trial)", required=True),
    Column("edge", "text", "chosen rows: the tuned fields whose value is the lowest or highest tried "
                           "(the range may be too narrow); empty otherwise"),
))
STORED_EXTRA = (TUNING,)

# The columns a record's summary holds (the others come from its config, its architecture's
# metadata, its confusion matrix and its environment).
SUMMARY = ("tested_weights", "best_epoch", "best_val_acc", "best_val_loss", "final_train_loss",
           "final_train_acc", "final_val_loss", "final_val_acc", "test_loss", "test_acc", "diverged_epoch",
           "epochs_run", "total_seconds", "train_seconds", "mean_epoch_seconds", "train_images_per_s",
           "memory_format", "step_mode", "seed_group", "stacked_with")


def declare_columns(table: Table, columns: list[Column], owner: str) -> None:
    """Declare ``owner``'s columns of ``table`` (replacing what it declared before; none: forget
    them); a name the fixed columns or another owner already declare is a bug."""
    others = [c.name for c in table.fixed] + [c.name for o, cs in table.declared.items() if o != owner for c in cs]
    clash = [c.name for c in columns if c.name in others]
    if clash:
        raise ValueError(f"{owner} declares column(s) of {table.file} already declared: {', '.join(clash)}")
    if columns:
        table.declared[owner] = tuple(columns)
    else:
        table.declared.pop(owner, None)


def varying(table: Table) -> set[str]:
    """The columns of ``table`` that differ between two runs of one config (times, the machine):
    what a comparison of results leaves out."""
    return {c.name for c in table.columns if c.varies}


def markdown(table: Table) -> str:
    """The column table of docs/output-format.md for ``table``."""
    lines = ["| column | type | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.kind} | {c.doc} |" for c in table.columns]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - prints what docs/output-format.md holds
    import bench.evaluations  # noqa: F401  (their columns join runs.csv when registered)
    from bench import schema  # the imported module, not this __main__ copy: it holds what registered

    for t in (*schema.TABLES, *schema.STORED_EXTRA):
        print(f"### `{t.file}`\n\n{schema.markdown(t)}\n")
