"""The SPEC registry: how dnspec finds and describes an implementation under test.

An :class:`Implementation` describes a CDN builder once (its callable, whether it takes
an injected noise draw, its devices and dtypes, whether it claims to fix the upstream
advisories), in the spirit of PyTorch's OpInfo; the generic properties run over it.

A SPEC string names one:
  ``reference``, ``fast``, ``transformers-rt_detr``, ``ultralytics``, ...  built-in names
  ``package.module:callable``                                              an importable callable
  ``path/to/file.py:callable``                                             a callable in a file
  a name registered in the entry-point group ``dnspec.implementations``

The callable follows the dnspec convention (see :mod:`dnspec.contract.reference`); it may be a
plain function or an :class:`Implementation`. Failure to load raises :class:`SpecError`
with one line naming what was tried.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

ENTRY_POINT_GROUP = "dnspec.implementations"

ALL_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


class SpecError(Exception):
    """A SPEC could not be loaded or is not a usable implementation."""


@dataclass(frozen=True)
class Implementation:
    """One implementation under test, described once.

    ``fn`` follows the dnspec convention. ``accepts_noise``: ``fn(..., noise=NoiseDraw)``
    applies the injected draw exactly (enables the exact differential and device checks).
    ``fixes_advisories``: the implementation claims to fix the upstream advisories, so
    strict mode holds it to them. ``devices``/``dtypes``: where it is meant to run.
    ``not_comparable``: ``{property or family name: why}`` for properties an adapter
    cannot compare with RT-DETR's semantics (an extra argument with no RT-DETR
    equivalent, a different layout by design); they are reported "not comparable: why",
    never run and never failed. ``notes``: how the SPEC was loaded and bound, when not
    plainly (its own package imported by absolute name, renamed parameters, parameters
    left at their defaults), one line each for the verdict's header.
    """

    name: str
    fn: Callable
    accepts_noise: bool = False
    fixes_advisories: bool = False
    devices: tuple[str, ...] = ("cpu", "cuda", "mps")
    dtypes: tuple[torch.dtype, ...] = ALL_DTYPES
    version: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)
    not_comparable: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # the SPEC string (and its --bind items) it was loaded from: how a worker that is not
    # forked loads it again (dnspec.calling.start_methods); "" for one made in code
    spec: str = ""
    bind: tuple[tuple[str, str], ...] = ()

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.version})" if self.version else self.name


def takes_noise(fn: Callable) -> bool:
    """True if ``fn`` has a keyword parameter named ``noise``."""
    try:
        return "noise" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def as_implementation(obj, name: str, version: str = "", bind: dict | None = None, notes=()) -> Implementation:
    """Wrap a loaded object as an Implementation (or return it, renamed if unnamed). A
    plain callable is bound to RT-DETR's arguments first (:mod:`dnspec.implementations.binding`,
    ``bind``: the user's ``{RT-DETR name: parameter}``); one that cannot be is a SpecError.
    An Implementation follows dnspec's convention already (an adapter) and is not bound."""
    from dnspec.implementations.binding import BindingError, Bound
    from dnspec.implementations.binding import bind as bind_parameters

    if isinstance(obj, Implementation):
        return obj
    if not callable(obj):
        raise SpecError(f"SPEC {name!r} resolved to {type(obj).__name__}, which is not callable")
    try:
        binding = bind_parameters(obj, bind, label=name)
    except BindingError as error:
        raise SpecError(str(error)) from None
    fn = obj if binding.plain else Bound(obj, binding)
    lines = tuple(notes)
    if binding.lines:
        lines += ("bound: " + "; ".join(binding.lines),)
    return Implementation(name=name, fn=fn, accepts_noise=takes_noise(obj), version=version, notes=lines)


# --- built-in names --------------------------------------------------------------------


def _reference() -> Implementation:
    from dnspec import __version__
    from dnspec.contract.reference import get_contrastive_denoising_training_group

    return Implementation(
        name="reference",
        fn=get_contrastive_denoising_training_group,
        accepts_noise=True,
        version=f"dnspec {__version__}",
        description="RT-DETR's builder, bit-identical to transformers' port",
    )


# Providers of built-in names: ``module:function`` returning {name: zero-argument loader}.
# A provider whose module is absent (not written yet) or whose peer package is not
# installed contributes loaders that raise SpecError saying what to install.
BUILTIN_PROVIDERS = (
    "dnspec.implementations.fast:builtin_implementations",
    "dnspec.implementations.adapters.transformers_peers:builtin_implementations",
    "dnspec.implementations.adapters.ultralytics_peer:builtin_implementations",
    "dnspec.implementations.adapters.libreyolo_peers:builtin_implementations",
    "dnspec.implementations.adapters.lightly_train_peer:builtin_implementations",
)


def builtin_loaders() -> dict[str, Callable[[], Implementation]]:
    loaders: dict[str, Callable[[], Implementation]] = {"reference": _reference}
    for provider in BUILTIN_PROVIDERS:
        module_name, func_name = provider.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        loaders.update(getattr(module, func_name)())
    return loaders


def builtin_names() -> list[str]:
    return list(builtin_loaders())


def installed_builtin_names() -> list[str]:
    """Built-in names whose packages are importable here (what ``dnspec matrix`` runs)."""
    names = []
    for name, loader in builtin_loaders().items():
        try:
            loader()
        except SpecError:
            continue
        names.append(name)
    return names


# --- loading ---------------------------------------------------------------------------


def _entry_points():
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def loading_notes() -> tuple[str, ...]:
    """How the latest file SPEC was loaded, when not plainly: the own packages it imported
    by absolute name (:data:`dnspec.implementations.file_loader.OWN_PACKAGES`)."""
    from dnspec.implementations.file_loader import OWN_PACKAGES

    if not OWN_PACKAGES:
        return ()
    names = ", ".join(
        f"{name!r} from {folder / name if (folder / name).is_dir() else folder / (name + '.py')}"
        for name, folder in OWN_PACKAGES.items()
    )
    return (f"loaded: as a module of its package chain; its own package imported by absolute name: {names}",)


def _load_from_file(path_text: str, attr: str, spec: str):
    """The callable ``attr`` of the file, loaded as a module of its package chain
    (:mod:`dnspec.implementations.file_loader`: relative imports work, package ``__init__`` files are not
    run unless a name is taken from one)."""
    from dnspec.implementations.file_loader import TreeImportError, load_file

    path = Path(path_text)
    if not path.is_file():
        raise SpecError(f"cannot load SPEC {spec!r}: file {path_text!r} does not exist")
    try:
        module = load_file(path)
    except TreeImportError as exc:
        raise SpecError(f"cannot load SPEC {spec!r}: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing
        raise SpecError(
            f"cannot load SPEC {spec!r}: importing {path_text!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    return _get_attr(module, attr, spec, f"file {path_text!r}")


def _load_from_module(module_name: str, attr: str, spec: str):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SpecError(f"cannot load SPEC {spec!r}: no module named {exc.name!r}") from exc
    except Exception as exc:
        raise SpecError(
            f"cannot load SPEC {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    return _get_attr(module, attr, spec, f"module {module_name!r}")


def _get_attr(module, attr: str, spec: str, where: str):
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"cannot load SPEC {spec!r}: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_implementation(spec: str, bind: dict | None = None) -> Implementation:
    """Resolve a SPEC string (see the module docstring) to an Implementation; a plain
    callable is bound to RT-DETR's arguments (``bind``: ``{RT-DETR name: parameter}``)."""
    if isinstance(spec, Implementation):
        return spec
    loaders = builtin_loaders()
    if spec in loaders:
        return loaders[spec]()
    if ":" in spec:
        target, attr = spec.rsplit(":", 1)
        if not attr:
            raise SpecError(f"cannot load SPEC {spec!r}: nothing after ':' (expected module:callable)")
        notes = ()
        if target.endswith(".py") or "/" in target or "\\" in target:
            obj = _load_from_file(target, attr, spec)
            notes = loading_notes()
        else:
            obj = _load_from_module(target, attr, spec)
        impl = as_implementation(obj, spec, bind=bind, notes=notes)
        return replace(impl, name=impl.name or spec, spec=spec, bind=tuple(sorted((bind or {}).items())))
    entry_points = _entry_points()
    if spec in entry_points:
        ep = entry_points[spec]
        try:
            obj = ep.load()
        except Exception as exc:
            raise SpecError(
                f"cannot load SPEC {spec!r}: entry point {ep.value!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        version = ep.dist.version if ep.dist is not None else ""
        return as_implementation(obj, spec, version, bind=bind)
    raise SpecError(
        f"cannot load SPEC {spec!r}: not a built-in name ({', '.join(loaders)}), not an entry point in "
        f"{ENTRY_POINT_GROUP!r} ({', '.join(entry_points) or 'none installed'}), and not of the form "
        f"'package.module:callable' or 'path/to/file.py:callable'"
    )
