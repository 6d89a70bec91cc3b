"""Reading what a builder returns as RT-DETR's four outputs, at the call boundary.

RT-DETR returns a 4-tuple ``(input_query_class, input_query_bbox, attn_mask, dn_meta)``,
and ``(None, None, None, None)`` when there is no denoising. Forks return the same four
values in other containers; :func:`read_outputs` turns each into the 4-tuple, so every
check sees RT-DETR's shape, and names the container (a convention, never a failure):

- a tuple or list of four values: RT-DETR's (a list is named);
- a namedtuple, a dataclass or a mapping whose fields are the four outputs, each under
  one of the names in :data:`FIELD_NAMES` (``query_class`` or ``input_query_class``,
  ``query_bbox_unact`` or ``input_query_bbox``, ``attn_mask``, ``dn_meta``, ...), read by
  name; a namedtuple or dataclass of exactly four fields whose names are not all
  recognised, read in order;
- a bare ``None``: "no denoising", read as four Nones (the checks then judge whether no
  denoising was the right answer for that call).

Anything else cannot be read as the four outputs at all: :class:`NotFourOutputs`, which
:func:`dnspec.calling.call.call_implementation` raises as an ``UnreadableOutput`` (an
``ImplementationError``) to every check that needed the call, so that it is one
divergence (``structure.outputs``) listing those properties, never one per property.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

OUTPUTS = ("input_query_class", "input_query_bbox", "attn_mask", "dn_meta")
# the names a container's field may have for each output (RT-DETR's local names, the
# transformers port's, and the spellings forks use)
FIELD_NAMES = {
    "input_query_class": ("input_query_class", "query_class", "dn_query_class", "denoising_class", "dn_class"),
    "input_query_bbox": (
        "input_query_bbox",
        "query_bbox_unact",
        "query_bbox",
        "dn_query_bbox",
        "denoising_bbox_unact",
        "dn_bbox",
    ),
    "attn_mask": ("attn_mask", "attention_mask", "dn_attn_mask", "self_attn_mask"),
    "dn_meta": ("dn_meta", "denoising_meta", "meta"),
}
NO_DENOISING = "bare None"


class NotFourOutputs(ValueError):
    """The builder returned something that is not RT-DETR's four outputs in any known container."""


@dataclasses.dataclass(frozen=True)
class ReadOutputs:
    """The four outputs, and the container they came in (``""``: RT-DETR's tuple)."""

    outputs: tuple
    container: str = ""


def read_outputs(value) -> ReadOutputs:
    """``value`` as RT-DETR's four outputs (see the module docstring); raises NotFourOutputs."""
    if value is None:
        return ReadOutputs((None, None, None, None), NO_DENOISING)
    fields = _fields(value)
    if fields is not None:
        by_name = _by_name(fields)
        kind = _kind(value)
        if by_name is not None:
            return ReadOutputs(by_name, f"{kind} {type(value).__name__}({', '.join(fields)})")
        if len(fields) == 4 and not isinstance(value, Mapping):
            return ReadOutputs(tuple(fields.values()), f"{kind} {type(value).__name__}({', '.join(fields)}), in order")
        raise NotFourOutputs(
            f"returned a {kind} {type(value).__name__} with fields {', '.join(fields) or 'none'}: not RT-DETR's four "
            f"outputs ({', '.join(OUTPUTS)}; recognised field names in docs/conventions.md)"
        )
    if isinstance(value, tuple) and len(value) == 4:
        return ReadOutputs(value)
    if isinstance(value, list) and len(value) == 4:
        return ReadOutputs(tuple(value), "a list of 4")
    what = f"a {type(value).__name__} of {len(value)}" if isinstance(value, (tuple, list)) else type(value).__name__
    raise NotFourOutputs(f"returned {what}; expected a tuple of 4 outputs ({', '.join(OUTPUTS)})")


def _kind(value) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    return "namedtuple" if isinstance(value, tuple) else "dataclass"


def _fields(value) -> dict | None:
    """The named fields of a namedtuple, dataclass instance or mapping (None: none of those)."""
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        return dict(zip(type(value)._fields, value, strict=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return dict(value) if all(isinstance(k, str) for k in value) else {}
    return None


def _by_name(fields: dict) -> tuple | None:
    """The four outputs by their field names (each found under exactly one name), else None."""
    out = []
    for output in OUTPUTS:
        found = [name for name in FIELD_NAMES[output] if name in fields]
        if len(found) != 1:
            return None
        out.append(fields[found[0]])
    return tuple(out)
