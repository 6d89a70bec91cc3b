"""How worker processes start, and how what they are given travels when they are not forked.

:func:`start_method` picks ``fork`` on Linux when no CUDA context exists in this process
(the fast path: a forked worker inherits the loaded implementation), else ``forkserver``
(POSIX) or ``spawn``; the environment variable ``DNSPEC_START_METHOD`` (``fork``,
``forkserver`` or ``spawn``) forces one, so the macOS/Windows/CUDA route can be run on
Linux (``ci/spawn.sh``). A value that is not a start method this platform offers is a
:class:`StartMethodError` naming the variable (a usage error, exit 2).

A worker that is not forked gets its state pickled (:func:`dumps`). Two kinds of object
travel by reference instead of by value, and are looked up again in the worker:

- a registered :class:`~dnspec.checks.suite.Property` travels as its name (its
  ``requires`` and ``variants`` are lambdas) -- this is resolved lazily through
  :data:`BY_REFERENCE` hooks so the calling layer does not import the checks;
- an :class:`~dnspec.implementations.specs.Implementation` whose callable cannot be
  imported by its qualified name (a closure, or a file loaded under a private module name)
  travels as the SPEC string it was loaded from (its ``name`` for ``path.py:fn`` and
  ``module:fn`` SPECs), or else as the place it lives in its defining module (a module
  attribute, or an entry of a dict, list or tuple there), re-loaded in the worker.

Anything else that does not pickle is a :class:`PicklingTrouble` naming it, never a run in
this process.
"""

from __future__ import annotations

import importlib
import io
import multiprocessing
import os
import pickle
import sys
import types

ENV = "DNSPEC_START_METHOD"
METHODS = ("fork", "forkserver", "spawn")

# (type test, reducer) pairs added by higher layers: a reducer returns (callable, args) or None
BY_REFERENCE: list = []


class StartMethodError(ValueError):
    """``DNSPEC_START_METHOD`` names no start method this platform offers (one line)."""


class PicklingTrouble(TypeError):
    """Something a worker needs cannot travel to a worker that is not forked."""


def forced() -> str | None:
    """The start method ``DNSPEC_START_METHOD`` forces (None: not set or empty), validated."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    offered = multiprocessing.get_all_start_methods()
    if value not in METHODS or value not in offered:
        raise StartMethodError(
            f"{ENV}={value!r} is not a worker start method offered here (one of: {', '.join(offered)})"
        )
    return value


def can_fork() -> bool:
    """Whether workers can be forked from this process: Linux, and no CUDA context here
    (a forked child cannot use one its parent made)."""
    import torch

    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and not (torch.cuda.is_available() and torch.cuda.is_initialized())
    )


def start_method() -> str:
    """``DNSPEC_START_METHOD`` if set; else ``fork`` where :func:`can_fork`, else
    ``forkserver`` (POSIX) or ``spawn``."""
    chosen = forced()
    if chosen is not None:
        return chosen
    if can_fork():
        return "fork"
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


# --- pickling by reference -----------------------------------------------------------------


def _load_bound_spec(spec: str, bind: tuple):
    from dnspec.implementations.specs import load_implementation

    return load_implementation(spec, bind=dict(bind) or None)


def _load_spec(spec: str):
    from dnspec.implementations.specs import load_implementation

    return load_implementation(spec)


def _locate(module_name: str, path: tuple):
    value = getattr(importlib.import_module(module_name), path[0])
    for step in path[1:]:
        value = value[step]
    return value


def _find(value, target, depth: int):
    """The path (keys and indices) from ``value`` to ``target`` (identity), or None."""
    if value is target:
        return ()
    if depth == 0:
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str | int):
            found = _find(item, target, depth - 1)
            if found is not None:
                return (key, *found)
    return None


def _by_name(fn) -> bool:
    """``fn`` is a function or class that pickles by its qualified name in any process: not
    a closure, not in ``__main__``, not in a module of dnspec's file loader (whose private
    names a new process does not know)."""
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", "") or ""
    if module.startswith("_dnspec_tree_") or module == "__main__" or "<locals>" in qualname or not qualname:
        return False
    try:
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except Exception:
        return False
    return value is fn


def reduce_implementation(impl):
    """(callable, args) that re-load ``impl`` in another process, or None when it pickles
    as it is (its callable by name, or a callable object whose parts pickle)."""
    fn = impl.fn
    if isinstance(fn, types.FunctionType | types.BuiltinFunctionType | type):
        if _by_name(fn):
            return None
    else:
        try:
            _PortablePickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(fn)
            return None
        except Exception:
            pass
    if getattr(impl, "spec", ""):  # loaded from a SPEC string: the worker loads it the same way
        return _load_bound_spec, (impl.spec, impl.bind)
    name = impl.name
    try:
        if _load_spec(name).fn is fn:
            return _load_spec, (name,)
    except Exception:
        pass
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is not None and not module.__name__.startswith("_dnspec_tree_") and module.__name__ != "__main__":
        for attr, value in list(vars(module).items()):
            path = _find(value, impl, 3)
            if path is not None:
                return _locate, (module.__name__, (attr, *path))
    raise PicklingTrouble(
        f"implementation {name!r} cannot be sent to a worker that is not forked: its callable "
        f"{getattr(fn, '__qualname__', fn)!r} does not pickle, {name!r} is not a SPEC that loads it, "
        "and it is not a module-level value of its module"
    )


class _PortablePickler(pickle.Pickler):
    def reducer_override(self, obj):
        from dnspec.implementations.specs import Implementation

        if type(obj) is Implementation:
            reduced = reduce_implementation(obj)
            if reduced is not None:
                return reduced
        for test, reducer in BY_REFERENCE:
            if test(obj):
                reduced = reducer(obj)
                if reduced is not None:
                    return reduced
        return NotImplemented


def dumps(value) -> bytes:
    """``value`` pickled for a worker that is not forked (see the module docstring)."""
    out = io.BytesIO()
    try:
        _PortablePickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except PicklingTrouble:
        raise
    except Exception as error:
        raise PicklingTrouble(f"what a worker needs does not pickle: {type(error).__name__}: {error}") from error
    return out.getvalue()
