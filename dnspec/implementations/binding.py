"""Binding RT-DETR's arguments to a builder's own parameters, decided before the first call.

dnspec calls every builder with RT-DETR's seven arguments, ``(targets, num_classes,
num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)``. A fork
may have renamed, reordered or extended them, so the signature is read first and each
RT-DETR argument is given to one parameter of the builder:

1. ``bind`` (``[tool.dnspec] bind = {num_queries = "num_queries_total"}`` or ``--bind
   num_queries=num_queries_total``): the user's word, first;
2. by name: a parameter called as RT-DETR calls it;
3. by position: a parameter with another name standing in RT-DETR's position (a
   renamed parameter: ``class_embeds <- class_embed``), unless its name says it means
   something else (``hidden_dim``, ``embed_dim``, ``training``, ... :data:`NOT_STAND_INS`)
   or is one of RT-DETR's own names bound elsewhere.

Every other parameter must have a default (it stays at its default, and the binding
says so); ``noise`` is dnspec's own keyword (an injected draw) and is left to the caller.
A builder whose parameters are exactly RT-DETR's, in RT-DETR's order, or that takes
``*args``, is called as it is (:attr:`Binding.plain`). Where an RT-DETR argument has no
parameter, or a parameter without a default gets no argument, the builder cannot be
called as RT-DETR's: :class:`BindingError`, one line showing both signatures and how to
fix it, raised before any call, so a call with a wrong binding never becomes a
divergence and no compatibility claim rests on one.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

RTDETR_PARAMETERS = (
    "targets",
    "num_classes",
    "num_queries",
    "class_embed",
    "num_denoising",
    "label_noise_ratio",
    "box_noise_scale",
)
RTDETR_SIGNATURE = (
    "(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0)"
)
# parameter names that mean something else than the RT-DETR argument in their position:
# never bound by position (a hidden size is not a query count)
NOT_STAND_INS = frozenset(
    {"hidden_dim", "embed_dim", "d_model", "num_heads", "training", "device", "dtype", "self", "cfg", "config"}
)
DNSPEC_KEYWORDS = frozenset({"noise"})
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class BindingError(Exception):
    """The builder cannot be called with RT-DETR's arguments (one line: both signatures, the fix)."""


@dataclass(frozen=True)
class Binding:
    """Which parameter of the builder gets each RT-DETR argument.

    ``parameters``: the builder's parameter for each RT-DETR argument, in RT-DETR's
    order; ``positional_only``: how many of the builder's first parameters must be
    passed by position (they are bound to RT-DETR's first arguments in order);
    ``lines``: the binding in words, one per renamed or defaulted parameter
    (``class_embeds <- class_embed (by position)``, ``training left at its default True``);
    ``plain``: the builder is called with RT-DETR's arguments as they are."""

    parameters: tuple[str, ...]
    positional_only: int = 0
    lines: tuple[str, ...] = ()
    plain: bool = False

    def call(self, fn, args: tuple, kwargs: dict):
        """``fn`` called with RT-DETR's positional ``args`` given to the bound parameters."""
        if self.plain:
            return fn(*args, **kwargs)
        values = dict(zip(RTDETR_PARAMETERS, args, strict=False))
        mine = {theirs: values[ours] for ours, theirs in zip(RTDETR_PARAMETERS, self.parameters, strict=True)}
        positional = [mine.pop(name) for name in list(mine)[: self.positional_only]]
        return fn(*positional, **mine, **kwargs)


class Bound:
    """A builder called through its :class:`Binding` (picklable when the builder is)."""

    def __init__(self, fn, binding: Binding):
        self.fn, self.binding = fn, binding
        self.__name__ = getattr(fn, "__name__", "builder")
        self.__module__ = getattr(fn, "__module__", None)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        return self.binding.call(self.fn, args, kwargs)


def parse_bind(entries, source: str) -> dict[str, str]:
    """``{RT-DETR name: parameter}`` from ``NAME=PARAM`` strings or a mapping; raises
    ValueError (one line naming ``source`` and the bad entry)."""
    pairs = entries.items() if isinstance(entries, dict) else [_split(entry, source) for entry in entries]
    out = {}
    for name, param in pairs:
        if name not in RTDETR_PARAMETERS:
            raise ValueError(
                f"{source} {name}={param}: {name!r} is not an RT-DETR argument ({', '.join(RTDETR_PARAMETERS)})"
            )
        if not isinstance(param, str) or not param.isidentifier():
            raise ValueError(f"{source} {name}={param!r}: the parameter must be a Python identifier")
        out[name] = param
    return out


def _split(entry: str, source: str) -> tuple[str, str]:
    name, sep, param = str(entry).partition("=")
    if not sep:
        raise ValueError(f"{source} {entry}: expected NAME=PARAM (an RT-DETR argument = the builder's parameter)")
    return name.strip(), param.strip()


def bind(fn, overrides: dict[str, str] | None = None, label: str = "the builder") -> Binding:
    """The :class:`Binding` of ``fn`` (see the module docstring); raises BindingError."""
    overrides = dict(overrides or {})
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return Binding(RTDETR_PARAMETERS, plain=True)  # a builtin or C callable: nothing to read
    params = [p for p in signature.parameters.values() if p.name not in DNSPEC_KEYWORDS or p.kind in _VARIADIC]
    named = [p for p in params if p.kind not in _VARIADIC]
    by_name = {p.name: p for p in named}
    positional = [p for p in named if p.kind in _POSITIONAL]
    has_args = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)
    if not overrides and [p.name for p in positional[:7]] == list(RTDETR_PARAMETERS):
        extras = _defaulted(named[7:])
        if not extras[1]:
            return Binding(RTDETR_PARAMETERS, lines=tuple(extras[0]), plain=True)
    if not overrides and has_args and len(positional) < 7 and all(p.name in RTDETR_PARAMETERS for p in positional):
        return Binding(
            RTDETR_PARAMETERS, plain=True
        )  # (targets, *args, **kwargs): RT-DETR's order, as upstream calls it

    chosen: dict[str, str] = {}
    lines: list[str] = []
    problems: list[str] = []
    for ours, theirs in overrides.items():
        if theirs not in by_name:
            problems.append(f"bind {ours}={theirs}: it has no parameter {theirs!r}")
        else:
            chosen[ours] = theirs
            lines.append(f"{theirs} <- {ours} (bind)")
    for ours in RTDETR_PARAMETERS:
        if ours not in chosen and ours in by_name and ours not in chosen.values():
            chosen[ours] = ours
    for index, ours in enumerate(RTDETR_PARAMETERS):
        if ours in chosen or index >= len(positional):
            continue
        candidate = positional[index]
        if (
            candidate.name not in chosen.values()
            and candidate.name not in RTDETR_PARAMETERS
            and candidate.name not in NOT_STAND_INS
        ):
            chosen[ours] = candidate.name
            lines.append(f"{candidate.name} <- {ours} (by position)")
    missing = [ours for ours in RTDETR_PARAMETERS if ours not in chosen]
    if missing:
        problems.append("no parameter takes " + ", ".join(missing))
    unbound = [p for p in named if p.name not in chosen.values()]
    defaulted, required = _defaulted(unbound)
    if required:
        problems.append(
            ", ".join(required)
            + (" is" if len(required) == 1 else " are")
            + " required and RT-DETR has no such argument"
        )
    order = {p.name: i for i, p in enumerate(named)}
    leading = [p for p in named if p.kind == inspect.Parameter.POSITIONAL_ONLY]
    for index, p in enumerate(leading):  # passed by position: they must take RT-DETR's first arguments, in order
        if not problems and (index >= len(RTDETR_PARAMETERS) or chosen.get(RTDETR_PARAMETERS[index]) != p.name):
            problems.append(f"{p.name} is positional-only but is not RT-DETR's argument number {index + 1}")
    if problems:
        raise BindingError(
            f"signature: {label} has parameters {signature}, which cannot be bound to RT-DETR's {RTDETR_SIGNATURE}: "
            f'{"; ".join(problems)}. Fix: bind them in pyproject.toml ([tool.dnspec] bind = {{num_queries = "PARAM"}}) '
            f"or with --bind NAME=PARAM, or wrap the builder in an adapter (docs/adapters.md)"
        )
    if [order[chosen[ours]] for ours in RTDETR_PARAMETERS] != sorted(order[chosen[ours]] for ours in RTDETR_PARAMETERS):
        lines.insert(0, "parameters in another order than RT-DETR's: bound by name")
    return Binding(tuple(chosen[ours] for ours in RTDETR_PARAMETERS), len(leading), tuple(lines + defaulted))


def _defaulted(params) -> tuple[list[str], list[str]]:
    """(lines for the parameters left at their defaults, names of those without one)."""
    lines, required = [], []
    for p in params:
        if p.kind in _VARIADIC:
            continue
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            lines.append(f"{p.name} left at its default {p.default!r}")
    return lines, required
