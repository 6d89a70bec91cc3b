"""Is this builder of RT-DETR's API at all? One probe call before a verify run.

dnspec's properties judge a builder that takes RT-DETR's inputs (targets: one dict per
image with ``labels`` [n] and ``boxes`` [n, 4], normalized cxcywh, as torch tensors) and
returns RT-DETR's outputs (torch tensors, boxes of 4 values per row). A builder of
another API (oriented boxes, 8-coordinate quads, human-object-interaction pairs, another
framework) fails every property for one reason; it gets one line instead of a list of
divergences (``dnspec verify`` exits 2 with it).

:func:`probe` calls the builder once on the common regime's canonical case (two images,
three boxes) and says it is another API when, and only when:

- the call raises ``KeyError`` on a target key other than ``labels`` and ``boxes``, in
  the builder's own code (it reads ``targets[i]["rboxes"]``, ``["sub_boxes"]``, ...);
- it returns arrays of another framework (numpy, paddle, jax, tensorflow, mindspore)
  where RT-DETR returns torch tensors;
- its box output has other than 4 values per row (5: oriented boxes, 8: quads);
- the call raises ``AttributeError`` in the builder's own code asking the ``nn.Embedding``
  it was given as ``class_embed`` for a tensor's attribute (``class_embed.device``): it
  takes an embedding weight tensor, as RT-DETRv3's PaddlePaddle-derived port does.

Any other failure of the probe call is left to the properties (a bug is a divergence,
with its regime and minimal example), and so is a probe that passes.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGET_KEYS = ("labels", "boxes")
FRAMEWORKS = ("numpy", "paddle", "jax", "jaxlib", "tensorflow", "mindspore", "cupy")


@dataclass(frozen=True)
class OtherApi:
    """The builder is not of RT-DETR's API: ``what`` differs, in words (one line)."""

    what: str


def probe(impl, time_limit_s: float | None = None) -> OtherApi | None:
    """One call on the canonical common case (see the module docstring), stopped after
    ``time_limit_s``; None: RT-DETR's API as far as one call tells. A probe that hangs is
    forgotten (the run's own calls meet the hang again, and report it)."""
    from dnspec.calling.call import HANGS, ImplementationError, ImplementationTimeout, _call_implementation
    from dnspec.calling.outputs import NotFourOutputs, read_outputs
    from dnspec.generation import regimes
    from dnspec.generation.strategies import pinned_cases

    case = next(c for c in pinned_cases(regimes.COMMON) if c.note.startswith("common"))
    try:
        raw = _call_implementation(impl, case, args=case.args(), time_limit_s=time_limit_s)
    except ImplementationTimeout:
        HANGS.hung.pop(getattr(impl, "name", repr(impl)), None)
        return None
    except ImplementationError as error:
        cause = error.__cause__
        if isinstance(cause, KeyError) and cause.args and _their_key(cause):
            key = cause.args[0]
            return OtherApi(
                f"it reads targets[i][{key!r}], which RT-DETR's targets do not have (they hold {', '.join(TARGET_KEYS)}: "
                "labels [n] and boxes [n, 4] normalized cxcywh): its targets are another API's"
            )
        if isinstance(cause, AttributeError) and _embedding_used_as_tensor(cause):
            return OtherApi(
                f"it uses class_embed as a tensor ({cause}), where RT-DETR passes the nn.Embedding it calls "
                "(class_embed(labels)): its class embedding is another API's"
            )
        return None
    foreign = _foreign(raw)
    if foreign:
        return OtherApi(f"it returns {foreign} where RT-DETR returns torch tensors: a builder for another framework")
    try:
        outputs = read_outputs(raw).outputs
    except NotFourOutputs:
        return None
    boxes = outputs[1]
    width = getattr(boxes, "shape", (4,))[-1] if getattr(boxes, "ndim", 0) else 4
    if width != 4:
        kind = {5: " (oriented boxes: cx, cy, w, h, angle)", 8: " (quadrilaterals: 4 corners)"}.get(width, "")
        return OtherApi(
            f"its box output has {width} values per row{kind} where RT-DETR's has 4 (cx, cy, w, h): boxes of another API"
        )
    return None


def _their_key(error: KeyError) -> bool:
    """A string key other than RT-DETR's target keys, raised in the builder's code."""
    key = error.args[0]
    return isinstance(key, str) and key not in TARGET_KEYS and _raised_in_theirs(error)


def _embedding_used_as_tensor(error: AttributeError) -> bool:
    """The builder's own code asked the nn.Embedding it was given for a tensor's attribute
    (``class_embed.device``, ``.shape``): it takes an embedding weight tensor instead."""
    return str(error).startswith("'Embedding' object has no attribute") and _raised_in_theirs(error)


def _raised_in_theirs(error: BaseException) -> bool:
    """The error was raised in the builder's code, not in dnspec's."""
    import os
    import traceback

    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # the dnspec package
    return bool(frames) and not frames[-1].filename.startswith(ours)


def _foreign(value, depth: int = 0) -> str:
    """The type of the first array of another framework in ``value`` (searched 2 levels deep), or ''."""
    module = type(value).__module__.split(".")[0]
    if module in FRAMEWORKS:
        return f"{type(value).__module__}.{type(value).__name__}"
    if depth < 2:
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
        for item in items:
            found = _foreign(item, depth + 1)
            if found:
                return found
    return ""
