"""Registered CNN architectures.

Importing this package registers every family module below; add a new family by writing
a module and importing it here.
"""

from . import (  # noqa: F401  (imported for their registrations)
    ablation,
    bn_convnet,
    bottleneck_net,
    convnet,
    digitnet,
    examples_net,
    fullconv,
    lenet,
    stride_net,
    vgg,
)
from ._shapes import flat_features
from .registry import (
    ArchSpec,
    UnknownArchitectureError,
    build_model,
    get_spec,
    list_models,
    register_model,
    resolve,
    unregister_model,
)

__all__ = [
    "ArchSpec",
    "UnknownArchitectureError",
    "build_model",
    "flat_features",
    "get_spec",
    "list_models",
    "register_model",
    "resolve",
    "unregister_model",
]
