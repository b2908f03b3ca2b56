"""Networks from outside the zoo: a user's file, a dotted module, or an installed package.

A user's module registers builders with the zoo's own ``architectures.register_model``.
The driver reads each source once (``--archs-from`` and the ``cnnbench.architectures``
entry-point group); executors hand the same sources to their workers, because a spawned
process or a Ray worker starts with the built-in zoo only.  A file travels as the text the
driver read, so every worker trains the code the driver checked (and names its runs by
that code's digest) even on a node where the file does not exist.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import linecache
import re
import sys
import traceback
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import BenchError, one_line

ENTRY_POINT_GROUP = "cnnbench.architectures"
_MODULE_PREFIX = "cnnbench_user_"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class NetworkSource:
    """One place networks come from: a file (with the text the driver read) or a module."""

    kind: Literal["file", "module"]
    ref: str  # a file's absolute path, or a dotted module name
    text: str = ""  # a file's source
    label: str = field(default="", compare=False)  # how messages name it

    @property
    def module_name(self) -> str:
        if self.kind == "module":
            return self.ref
        stem = re.sub(r"\W", "_", Path(self.ref).stem)
        return f"{_MODULE_PREFIX}{stem}_{hashlib.sha256(self.ref.encode()).hexdigest()[:8]}"

    @property
    def name(self) -> str:
        return self.label or self.ref

    def describe(self) -> dict[str, str]:
        """What config.json records, so later commands can load the same networks."""
        return {"kind": self.kind, "ref": self.ref, "label": self.name}


# module name -> the source it was loaded from, in load order
_LOADED: dict[str, NetworkSource] = {}


def parse_ref(ref: str) -> NetworkSource:
    """``--archs-from`` text as a source: a ``.py`` file (read now) or a dotted module name."""
    text = ref.strip()
    path = Path(text).expanduser()
    if text.endswith(".py") or "/" in text or path.is_file():
        path = path.resolve()
        try:
            return NetworkSource("file", str(path), path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            raise BenchError(f"--archs-from {ref}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchError(f"--archs-from {ref}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if not _DOTTED.match(text):
        raise BenchError(f"--archs-from {ref!r} is neither a .py file nor a dotted module name")
    return NetworkSource("module", text, label=f"module {text}")


def entry_point_sources() -> list[NetworkSource]:
    """The modules installed packages name in the ``cnnbench.architectures`` entry-point group."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    return [NetworkSource("module", ep.module, label=f"entry point {ep.name} ({ep.value})") for ep in found]


def use(sources: Iterable[NetworkSource]) -> None:
    """Make exactly ``sources`` the user networks of this process (the zoo stays).

    Sources loaded before and still wanted are kept as they are; ones no longer wanted are
    unregistered (a worker reused for another grid, or a test after another); new ones are
    imported in order.  A source that fails to import leaves nothing of itself registered.
    """
    wanted = {s.module_name: s for s in sources}
    changed = False
    for name, loaded in list(_LOADED.items()):
        if wanted.get(name) != loaded:
            _unload(name)
            changed = True
    for name, source in wanted.items():
        if name not in _LOADED:
            _load(source)
            _LOADED[name] = source
            changed = True
    if changed and "bench.flops" in sys.modules:
        sys.modules["bench.flops"]._arch_cost.cache_clear()  # a name may now build other code


def loaded_sources() -> tuple[NetworkSource, ...]:
    """What this process loaded: executors hand it to their workers."""
    return tuple(_LOADED.values())


def use_from_command_line(refs: Sequence[str] | None) -> None:
    """The driver's sources: ``--archs-from`` in the order given, then installed entry points."""
    sources = [parse_ref(r) for r in refs or ()]
    sources += [s for s in entry_point_sources() if s.module_name not in {x.module_name for x in sources}]
    use(sources)


def use_recorded(invocation: dict) -> None:
    """Load the sources an output directory's config.json says its grid used (their current text)."""
    use_from_command_line([entry["ref"] for entry in invocation.get("archs_from", []) if entry.get("ref")])


def _names_of(module_name: str) -> list[str]:
    from architectures import list_models
    from architectures.registry import get_spec

    return [n for n in list_models() if get_spec(n).builder.__module__ == module_name]


def _unload(module_name: str) -> None:
    from architectures import unregister_model

    for name in _names_of(module_name):
        unregister_model(name)
    sys.modules.pop(module_name, None)
    _LOADED.pop(module_name, None)


def _load(source: NetworkSource) -> None:
    try:
        if source.kind == "file":
            _exec_file(source)
        else:
            importlib.import_module(source.ref)
    except ModuleNotFoundError as exc:
        _unload(source.module_name)
        if source.kind == "module" and exc.name and source.ref.startswith(exc.name):
            raise BenchError(f"cannot import {source.name}: no module named {exc.name!r}") from None
        raise BenchError(f"cannot import {source.name}{_where(exc, source)}: {one_line(exc)}") from None
    except SyntaxError as exc:
        _unload(source.module_name)
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename != source.ref else f"line {exc.lineno}"
        raise BenchError(f"cannot import {source.name} ({where}): SyntaxError: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a user's module raises, say where in one line
        _unload(source.module_name)
        raise BenchError(f"cannot import {source.name}{_where(exc, source)}: {one_line(exc)}") from None


def _exec_file(source: NetworkSource) -> None:
    code = compile(source.text, source.ref, "exec")
    module = types.ModuleType(source.module_name)
    module.__file__ = source.ref
    # inspect.getsource (the network's digest) and tracebacks read the text from here, so a
    # worker without the file, or a file edited since, still gives the text that was run.
    linecache.cache[source.ref] = (len(source.text), None, source.text.splitlines(True), source.ref)
    sys.modules[source.module_name] = module
    exec(code, module.__dict__)  # noqa: S102 - running the user's own network file is the point


def _where(exc: BaseException, source: NetworkSource) -> str:
    """`` (line N)`` of the source's last frame in the traceback, plus the innermost frame
    when it lies in another file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    if not frames:
        return ""
    own_file = source.ref if source.kind == "file" else _module_file(source.ref)
    own = [f for f in frames if f.filename == own_file]
    last = frames[-1]
    if own:
        where = f"line {own[-1].lineno}"
        if own[-1] is not last and not _in_cnnbench(last.filename):  # e.g. a helper module of theirs
            where += f", in {last.filename}:{last.lineno}"
        return f" ({where})"
    return f" ({last.filename}:{last.lineno})"


def _in_cnnbench(filename: str) -> bool:
    import architectures

    return any(Path(filename).is_relative_to(Path(m.__file__).parent) for m in (architectures, sys.modules["bench"]))


def _module_file(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None
