"""The architecture registry: one decorator, one lookup.

Modelled on torchvision's ``models/_api.py`` (a decorator registers a builder under a
unique name) and timm's listing (glob and tag filters).  ``bench`` only ever talks to
this module; it never imports a model class directly.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType, ModuleType

from torch import nn

Builder = Callable[..., nn.Module]


class UnknownArchitectureError(KeyError):
    """Raised for a name, glob or tag that matches nothing in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


@dataclass(frozen=True)
class ArchSpec:
    """Everything the harness knows about one registered architecture."""

    name: str
    builder: Builder
    family: str
    description: str
    tags: frozenset[str] = frozenset()
    # Machine-readable factor levels (e.g. {"conv": "dilated", "downsample": "max"}) so the
    # report can estimate each factor's effect without parsing names.
    factors: Mapping[str, str] = field(default_factory=dict)

    def build(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
        return self.builder(in_channels=in_channels, num_classes=num_classes, image_size=image_size)

    @property
    def source_file(self) -> str:
        """The file that defines the builder, for messages that must say where to look."""
        module = sys.modules.get(self.builder.__module__)
        return getattr(module, "__file__", None) or self.builder.__module__

    @cached_property
    def digest(self) -> str:
        """Digest of the code that builds this network: its module and the package's private
        helper modules it builds from (``_blocks``, ``_shapes``), as normalized syntax trees.

        Part of a run's identity: editing what builds a network must invalidate cached
        results, even when its name stays the same.  Comments, docstrings and the
        registration's metadata (description, tags) are prose, not code: editing them keeps
        every run id.  Read once per process: a file edited while a grid runs must not give
        one run two names (the runner refuses a worker's record whose digest differs).
        """
        module = sys.modules[self.builder.__module__]
        code = "".join(code_of(m) for m in (module, *helper_modules(module)))
        return hashlib.sha256(code.encode()).hexdigest()[:16]


def code_of(module: ModuleType) -> str:
    """``module``'s syntax tree without docstrings or ``register_model`` decorators, as text.

    Written out field by field, leaving out empty fields, so that a newer Python adding an
    (empty) field to a node does not change a digest.
    """
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            node.decorator_list = [d for d in node.decorator_list if not _registers(d)]
    return _canonical(tree)


def _registers(decorator: ast.expr) -> bool:
    func = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == register_model.__name__


def _canonical(node: object) -> str:
    if isinstance(node, ast.AST):
        parts = [type(node).__name__]
        for name in node._fields:
            value = getattr(node, name, None)
            if name in ("ctx", "type_comment") or value is None or value == []:
                continue
            parts.append(f"{name}={_canonical(value)}")
        return "(" + " ".join(parts) + ")"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(v) for v in node) + "]"
    return repr(node)


def helper_modules(module: ModuleType) -> list[ModuleType]:
    """The private modules of ``module``'s package and of this one (``architectures._*``)
    that ``module`` uses, directly or through another helper, in name order."""
    prefixes = {__name__.rpartition(".")[0] + "._", module.__name__.rpartition(".")[0] + "._"}
    found: dict[str, ModuleType] = {}
    todo = [module]
    while todo:
        for value in vars(todo.pop()).values():
            name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            if isinstance(name, str) and name.startswith(tuple(p for p in prefixes if p != "._")) \
                    and name not in found and name in sys.modules:
                found[name] = sys.modules[name]
                todo.append(found[name])
    return [found[name] for name in sorted(found)]


_REGISTRY: dict[str, ArchSpec] = {}


def register_model(
    name: str,
    *,
    family: str,
    description: str,
    tags: Iterable[str] = (),
    factors: Mapping[str, str] | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name``; a name can be registered only once."""

    if name != name.lower() or not name or any(c.isspace() for c in name):
        raise ValueError(f"architecture names are lowercase with no spaces, got {name!r}")

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            existing = _REGISTRY[name].builder
            raise ValueError(
                f"architecture {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        _REGISTRY[name] = ArchSpec(
            name=name,
            builder=builder,
            family=family,
            description=description,
            tags=frozenset(tags),
            factors=MappingProxyType(dict(factors or {})),
        )
        return builder

    return decorator


def unregister_model(name: str) -> None:
    """Remove ``name`` (for tests that register throw-away networks)."""
    _REGISTRY.pop(name, None)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture {name!r}; known: {', '.join(list_models())}"
        ) from None


def build_model(name: str, **kwargs: int) -> nn.Module:
    return get_spec(name).build(**kwargs)


def resolve(selector: str | Iterable[str]) -> list[str]:
    """Expand a selector into registered names, in first-seen order, without repeats.

    A selector is a comma list whose items are exact names, globs (``ablate-*``) or tags
    (``tag:ablation``).  An item that matches nothing is an error naming the known names.
    """
    items = selector.split(",") if isinstance(selector, str) else list(selector)
    names: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item.startswith("tag:"):
            tag = item[4:]
            matched = [n for n in list_models() if tag in _REGISTRY[n].tags]
            if not matched:
                known = sorted({t for s in _REGISTRY.values() for t in s.tags})
                raise UnknownArchitectureError(
                    f"no architecture has tag {tag!r}; known tags: {', '.join(known)}"
                )
        elif any(c in item for c in "*?["):
            matched = fnmatch.filter(list_models(), item)
            if not matched:
                raise UnknownArchitectureError(
                    f"no architecture matches {item!r}; known: {', '.join(list_models())}"
                )
        else:
            matched = [get_spec(item).name]
        names.extend(n for n in matched if n not in names)
    if not names:
        raise UnknownArchitectureError("no architecture selected")
    return names
