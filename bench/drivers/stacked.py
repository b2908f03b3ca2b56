"""Seeds of one configuration stacked into one network: many seeds for the price of few.

A grid's runs of one architecture differ only in their seed.  Small nets leave a CPU core
or a GPU idle between tiny kernels, so ``--stack-seeds N`` trains N such runs as one
network N times as wide: every convolution becomes a grouped convolution with a group per
run, every linear layer a batched matmul with a matrix per run, and BatchNorm, pooling and
activations, which act per channel, simply see N times the channels.  Image ``b`` of every
run's batch sits at batch position ``b``; run ``n`` owns channels ``n*C .. (n+1)*C - 1``.

Nothing crosses between runs: each has its own initial weights (built from its seed as it
would be alone), data order, gradients (the loss is the sum of the runs' mean losses) and
optimizer state (every optimizer cnnbench offers acts element by element).  Each run is
evaluated, tested and recorded alone, from its slice of the weights.  The arithmetic is the
same but grouped kernels sum in a different order, so results differ from solo runs in the
last bits: the mode is opt-in, part of the run's config, and recorded as its ``step_mode``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

STACKED = "stacked"

# Modules that act on each channel (or each value) alone: a stack passes them its N*C channels.
PER_CHANNEL = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Identity,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def stack_refusal(model: nn.Module) -> str | None:
    """Why ``model``'s runs cannot be stacked, or None when they can.

    ``stack_models`` widens the layers it knows; anything else that holds weights, or any
    layer it does not know, would be wrong when widened.  ``bench.drivers.stacked_training``
    also checks that the stack computes what the runs compute alone before training it.
    """
    for name, module in model.named_modules():
        if isinstance(module, DROPOUT) and module.p > 0:
            return ("dropout would draw every stacked run's masks from one generator, "
                    "so a run's seed alone would no longer fix them")
        if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
            return f"{name} flattens dimensions {module.start_dim}..{module.end_dim}; a stack knows only Flatten(1, -1)"
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.Flatten, *PER_CHANNEL, *CONTAINERS)):
            continue
        if not list(module.children()) or _has_own_state(module):
            return f"{name or 'the model'} is a {type(module).__name__}, which stacking cannot widen"
    return None


def _has_own_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


class StackedFlatten(nn.Flatten):
    """(B, N*C, H, W) -> (N, B, C*H*W): each run's features, flattened as its own Flatten would.

    A Flatten still, so the rewrites that hook every Flatten (``memory_format``) hook it too.
    """

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.runs, -1).transpose(0, 1)


class StackedLinear(nn.Module):
    """N linear layers at once: (N, B, in) -> (N, B, out), one batched matmul."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
                     if layers[0].bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class StackedLogits(nn.Module):
    """The stack's last step: its output as (N, B, classes) whatever layer made it."""

    def __init__(self, body: nn.Module, runs: int) -> None:
        super().__init__()
        self.body, self.runs = body, runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if out.dim() == 2:  # a convolutional head ends in (B, N*classes)
            out = out.reshape(out.shape[0], self.runs, -1).transpose(0, 1)
        return out


def stack_models(models: list[nn.Module]) -> nn.Module:
    """One network that computes all of ``models`` (same architecture, any weights) at once.

    Takes (B, N*C, H, W), the runs' batches side by side in the channels, and returns
    (N, B, classes).  ``stack_refusal`` must have said yes.
    """
    runs = len(models)
    stacked = copy.deepcopy(models[0])
    for name, module in list(stacked.named_modules()):
        if not name:
            continue
        peers = [m.get_submodule(name) for m in models]
        wide = _widen(module, peers, runs)
        if wide is not module:
            parent, _, child = name.rpartition(".")
            setattr(stacked.get_submodule(parent) if parent else stacked, child, wide)
    return StackedLogits(stacked, runs)


def _widen(module: nn.Module, peers: list[nn.Module], runs: int) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        wide = nn.Conv2d(
            module.in_channels * runs, module.out_channels * runs, module.kernel_size, module.stride,
            module.padding, module.dilation, module.groups * runs, module.bias is not None, module.padding_mode,
        )
        _load(wide, peers)
        return wide
    if isinstance(module, nn.BatchNorm2d):
        wide = nn.BatchNorm2d(module.num_features * runs, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        _load(wide, peers)
        return wide
    if isinstance(module, nn.Linear):
        return StackedLinear(peers)
    if isinstance(module, nn.Flatten):
        return StackedFlatten(runs)
    return module


def _load(wide: nn.Module, peers: list[nn.Module]) -> None:
    """Fill ``wide``'s tensors with the peers' side by side (scalars, like a step count, shared)."""
    with torch.no_grad():
        for name, tensor in [*wide.named_parameters(recurse=False), *wide.named_buffers(recurse=False)]:
            parts = [getattr(peer, name) for peer in peers]
            tensor.copy_(torch.cat(parts) if parts[0].dim() else parts[0])


def unstack_into(stacked: nn.Module, models: list[nn.Module]) -> None:
    """Copy each run's slice of ``stacked``'s weights and statistics into its own model."""
    runs = len(models)
    wide = {**dict(stacked.body.named_parameters()), **dict(stacked.body.named_buffers())}
    with torch.no_grad():
        for n, model in enumerate(models):
            for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
                source = wide[name]
                part = source if source.dim() == 0 else source.reshape(runs, *tensor.shape)[n]
                tensor.copy_(part)


def _per_value(state: object, param: torch.Tensor) -> bool:
    """An optimizer state tensor with a value per parameter value (a moment), not a step count."""
    return torch.is_tensor(state) and state.dim() > 0 and state.shape == param.shape


def unstack_optimizer_into(optimizer: torch.optim.Optimizer, stacked: nn.Module,
                           optimizers: list[torch.optim.Optimizer], models: list[nn.Module]) -> None:
    """Give each run's own optimizer (over its own model) its slice of the stack's state, in the
    form a run alone would have it, so that a run's checkpoint is a solo run's."""
    runs = len(models)
    wide = dict(stacked.body.named_parameters())

    def run_part(value: object, n: int, param: torch.Tensor, wide_param: torch.Tensor) -> object:
        if _per_value(value, wide_param):
            return value.reshape(runs, *param.shape)[n].clone()
        return value.clone() if torch.is_tensor(value) else value  # a step count: every run's

    for n, (own, model) in enumerate(zip(optimizers, models, strict=True)):
        for name, param in model.named_parameters():
            state = optimizer.state.get(wide[name])
            if state:
                own.state[param] = {key: run_part(value, n, param, wide[name]) for key, value in state.items()}


def stack_optimizer_states(optimizer: torch.optim.Optimizer, stacked: nn.Module,
                           optimizers: list[torch.optim.Optimizer], models: list[nn.Module]) -> None:
    """Load the runs' own optimizer states (each over its own model) into the stack's optimizer:
    ``unstack_optimizer_into`` the other way round."""
    states = [own.state_dict() for own in optimizers]
    assert all(len(s["param_groups"]) == 1 for s in states), "a run's optimizer has one parameter group"
    index = {name: i for i, (name, _) in enumerate(models[0].named_parameters())}
    merged = {}
    for j, (name, param) in enumerate(stacked.body.named_parameters()):
        parts = [s["state"].get(index[name]) for s in states]
        if any(part is None for part in parts):
            continue
        own_param = models[0].get_parameter(name)
        merged[j] = {key: torch.stack([part[key] for part in parts]).reshape(param.shape)
                     if _per_value(value, own_param) else value  # a step count: the same in every run
                     for key, value in parts[0].items()}
    groups = [{**states[0]["param_groups"][0], "params": list(range(len(index)))}]
    optimizer.load_state_dict({"state": merged, "param_groups": groups})
