"""Finding a peer's CDN builders by reading its installed files, without importing it, and
importing one when its name is loaded.

Importing a peer package costs seconds (libreyolo and lightly-train import a few
thousand modules) and may fail; listing dnspec's built-in names must do neither. So the
adapters locate the installed package with :func:`importlib.util.find_spec` (which does
not import a top-level package) and read its ``.py`` files for a top-level
``def <function>(``. A module is imported only when a name built from it is loaded.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path


def package_root(package: str) -> Path | None:
    """The folder of the installed top-level ``package``, found without importing it;
    None when it is not installed (or is a single-file module)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def distribution_version(distribution: str) -> str:
    """The installed version of ``distribution`` (from its metadata), or "?"."""
    try:
        return importlib.metadata.version(distribution)
    except Exception:
        return "?"


def find_definitions(
    root: Path | str, package: str, function: str, under: str = ""
) -> tuple[tuple[tuple[str, ...], str], ...]:
    """``((path parts relative to root without .py, module name), ...)`` for every
    ``.py`` file under ``root/under`` whose source defines ``function`` at top level
    (``def function(`` at the start of a line; methods, mentions, imports and names that
    merely start with ``function`` do not count). Sorted by path; read once per process."""
    return _scan(Path(root).resolve(), package, function, under)


@functools.cache
def _scan(root: Path, package: str, function: str, under: str) -> tuple[tuple[tuple[str, ...], str], ...]:
    defines = re.compile(rf"^def {re.escape(function)}\(", re.MULTILINE)
    base = root / under if under else root
    found = []
    for path in sorted(base.rglob("*.py")):
        try:
            source = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if function not in source or not defines.search(source):
            continue
        parts = path.relative_to(root).with_suffix("").parts
        found.append((parts, ".".join((package, *parts))))
    return tuple(found)


def import_builder(spec: str, module_name: str, function: str, install_hint: str) -> Callable:
    """``module_name.function``, imported for the SPEC ``spec``; any way that fails (a
    dependency missing, the import raising, no such callable) is one SpecError line."""
    from dnspec.implementations.specs import SpecError

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SpecError(
            f"cannot load SPEC {spec!r}: importing {module_name!r} needs {exc.name!r}, which is not installed; "
            f"{install_hint}"
        ) from exc
    except Exception as exc:  # e.g. torchvision's C extension failing beside another torch
        raise SpecError(
            f"cannot load SPEC {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    builder = getattr(module, function, None)
    if not callable(builder):
        raise SpecError(f"cannot load SPEC {spec!r}: {module_name!r} has no callable {function!r}")
    return builder


def missing_loader(spec: str, package: str, install_hint: str) -> Callable:
    """A loader for ``spec`` that says ``package`` is not installed and what to install."""

    def load():
        from dnspec.implementations.specs import SpecError

        raise SpecError(f"cannot load SPEC {spec!r}: {package} is not installed; {install_hint}")

    return load
