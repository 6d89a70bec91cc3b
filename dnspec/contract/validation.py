"""Checking one call's inputs against the CDN contract before building anything.

:func:`validate_cdn_inputs` takes the arguments of ``get_contrastive_denoising_training_group``
and raises :class:`CdnInputError` (a ``ValueError``) on the first thing that breaks the
contract, with a message that names the image, the field and the offending value::

    targets[3]['boxes'][1]: width 0.0 <= 0 (w and h of a normalized cxcywh box must be > 0)

Call it from your own data pipeline, or let dnspec's builders call it (``validate=True``,
their default). On valid inputs it returns None, consumes no random numbers and changes
nothing, so a validated call stays bit-identical to upstream.

The contract, check by check (in the order they run; the first failure is reported):

* configuration: ``num_classes`` an int >= 1; ``num_queries`` an int >= 0;
  ``num_denoising`` an int (<= 0 is allowed: it means "no denoising");
  ``label_noise_ratio`` a real number in [0, 1]; ``box_noise_scale`` a finite real >= 0.
* ``class_embed``: callable, with a 2-D ``.weight`` (an ``nn.Embedding`` or anything that
  has one) of at least ``num_classes + 1`` rows (row ``num_classes`` is the padding class).
* ``targets``: a list or tuple of mappings, each with ``labels`` and ``boxes`` tensors;
  ``labels`` of an integer dtype (not bool) and 1-D; ``boxes`` floating and of shape
  [n, 4] (an empty image is ``torch.zeros(0, 4)``, not ``torch.zeros(0)``); as many boxes
  as labels; every tensor on the device of ``targets[0]['labels']`` (the device upstream
  builds on), and ``class_embed.weight`` there too.
* values: labels in [0, num_classes); boxes finite, w > 0 and h > 0, and corners
  cx -+ w/2, cy -+ h/2 inside [0, 1] up to :func:`corner_tolerance`.

Cost: the structural checks read only metadata (no device work); the value checks are a
handful of vectorised reductions over all images at once and **one** host sync per call
(a single ``bool`` of the combined result). Only when that says something is wrong does
the slow path walk the images one by one to name the first offender.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping

import numpy
import torch

# corners may leave [0, 1] by this much in float32/float64: cx + w/2 computed in float32
# from a box that was exactly on the border is off by at most ~2 ulp(1) = 2.4e-7
CORNER_TOLERANCE = 1e-6


class CdnInputError(ValueError):
    """An input of a CDN call breaks the contract.

    ``field``: the argument or target key at fault (``'targets'``, ``'labels'``,
    ``'boxes'``, ``'class_embed'``, ``'num_classes'``, ``'num_queries'``,
    ``'num_denoising'``, ``'label_noise_ratio'``, ``'box_noise_scale'``);
    ``image_index``: the image in ``targets`` (None for the configuration);
    ``row``: the box or label within that image, where one is at fault (else None);
    ``value``: the offending value (a number, a dtype, a shape, a device, a type).
    """

    def __init__(self, message: str, *, field: str, image_index: int | None = None, row: int | None = None, value=None):
        super().__init__(message)
        self.field = field
        self.image_index = image_index
        self.row = row
        self.value = value


@functools.cache
def corner_tolerance(dtype: torch.dtype) -> float:
    """How far a corner may leave [0, 1]: 1e-6, or 2 machine epsilons of a coarser box
    dtype (float16 1.95e-3, bfloat16 1.56e-2), since rounding cx and w to the dtype
    moves cx + w/2 by up to one epsilon."""
    if not dtype.is_floating_point:
        return CORNER_TOLERANCE
    return max(CORNER_TOLERANCE, 2 * torch.finfo(dtype).eps)


def validate_cdn_inputs(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
) -> None:
    """Raise :class:`CdnInputError` if the call breaks the CDN contract (see the module
    docstring for every check); return None otherwise."""
    _check_config(num_classes, num_queries, num_denoising, label_noise_ratio, box_noise_scale)
    weight = _check_class_embed(class_embed, num_classes)
    labels, boxes = _check_structure(targets)
    if labels:
        device = labels[0].device
        if weight.device != device:
            raise CdnInputError(
                f"class_embed: weight on {weight.device}, targets on {device} (targets[0]['labels'] sets the device)",
                field="class_embed",
                value=weight.device,
            )
        _check_values(labels, boxes, num_classes)


# --- configuration -------------------------------------------------------------------


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _type_name(x) -> str:
    return type(x).__name__


def _check_config(num_classes, num_queries, num_denoising, label_noise_ratio, box_noise_scale) -> None:
    if not _is_int(num_classes):
        raise CdnInputError(
            f"num_classes: must be an int, got {_type_name(num_classes)} {num_classes!r}",
            field="num_classes",
            value=num_classes,
        )
    if num_classes < 1:
        raise CdnInputError(f"num_classes: {num_classes} < 1", field="num_classes", value=num_classes)
    if not _is_int(num_queries):
        raise CdnInputError(
            f"num_queries: must be an int, got {_type_name(num_queries)} {num_queries!r}",
            field="num_queries",
            value=num_queries,
        )
    if num_queries < 0:
        raise CdnInputError(f"num_queries: {num_queries} < 0", field="num_queries", value=num_queries)
    if not _is_int(num_denoising):
        raise CdnInputError(
            f"num_denoising: must be an int (<= 0 turns denoising off), got {_type_name(num_denoising)} {num_denoising!r}",
            field="num_denoising",
            value=num_denoising,
        )
    if not _is_real(label_noise_ratio):
        raise CdnInputError(
            f"label_noise_ratio: must be a real number, got {_type_name(label_noise_ratio)} {label_noise_ratio!r}",
            field="label_noise_ratio",
            value=label_noise_ratio,
        )
    if not 0 <= label_noise_ratio <= 1:  # False for NaN too
        raise CdnInputError(
            f"label_noise_ratio: {label_noise_ratio!r} outside [0, 1]",
            field="label_noise_ratio",
            value=label_noise_ratio,
        )
    if not _is_real(box_noise_scale):
        raise CdnInputError(
            f"box_noise_scale: must be a real number, got {_type_name(box_noise_scale)} {box_noise_scale!r}",
            field="box_noise_scale",
            value=box_noise_scale,
        )
    if not (math.isfinite(box_noise_scale) and box_noise_scale >= 0):
        raise CdnInputError(
            f"box_noise_scale: {box_noise_scale!r} is not a finite number >= 0",
            field="box_noise_scale",
            value=box_noise_scale,
        )


def _check_class_embed(class_embed, num_classes: int) -> torch.Tensor:
    weight = getattr(class_embed, "weight", None)
    if not callable(class_embed) or not isinstance(weight, torch.Tensor):
        raise CdnInputError(
            f"class_embed: expected an nn.Embedding (callable with a .weight tensor), got {_type_name(class_embed)}",
            field="class_embed",
            value=type(class_embed),
        )
    if weight.dim() != 2:
        raise CdnInputError(
            f"class_embed: weight has shape {list(weight.shape)}, expected 2-D [num_classes + 1, D]",
            field="class_embed",
            value=tuple(weight.shape),
        )
    if weight.shape[0] < num_classes + 1:
        raise CdnInputError(
            f"class_embed: {weight.shape[0]} rows < num_classes + 1 = {num_classes + 1} "
            f"(row num_classes embeds the padding class)",
            field="class_embed",
            value=int(weight.shape[0]),
        )
    return weight


# --- structure (metadata only) ----------------------------------------------------------


_INT_DTYPES = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
_FLOAT_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def _check_structure(targets) -> tuple[list, list]:
    """Per image, metadata only: written for speed (it runs once per image per call)."""
    if not isinstance(targets, (list, tuple)):
        raise CdnInputError(
            f"targets: expected a list of dicts (one per image), got {_type_name(targets)}",
            field="targets",
            value=type(targets),
        )
    labels_list, boxes_list = [], []
    device = None
    for i, target in enumerate(targets):
        if type(target) is not dict and not isinstance(target, Mapping):
            raise CdnInputError(
                f"targets[{i}]: expected a dict with 'labels' and 'boxes', got {_type_name(target)}",
                field="targets",
                image_index=i,
                value=type(target),
            )
        labels, boxes = target.get("labels"), target.get("boxes")
        if type(labels) is not torch.Tensor or type(boxes) is not torch.Tensor:
            _explain_entries(i, target)
        labels_shape, boxes_shape = labels.shape, boxes.shape
        if labels.dtype not in _INT_DTYPES:
            raise CdnInputError(
                f"targets[{i}]['labels']: dtype {labels.dtype} is not an integer dtype",
                field="labels",
                image_index=i,
                value=labels.dtype,
            )
        if len(labels_shape) != 1:
            raise CdnInputError(
                f"targets[{i}]['labels']: shape {list(labels_shape)}, expected 1-D [n]",
                field="labels",
                image_index=i,
                value=tuple(labels_shape),
            )
        if boxes.dtype not in _FLOAT_DTYPES:
            raise CdnInputError(
                f"targets[{i}]['boxes']: dtype {boxes.dtype} is not a floating dtype",
                field="boxes",
                image_index=i,
                value=boxes.dtype,
            )
        if len(boxes_shape) != 2 or boxes_shape[1] != 4:
            raise CdnInputError(
                f"targets[{i}]['boxes']: shape {list(boxes_shape)}, expected [n, 4] (an empty image is torch.zeros(0, 4))",
                field="boxes",
                image_index=i,
                value=tuple(boxes_shape),
            )
        if boxes_shape[0] != labels_shape[0]:
            raise CdnInputError(
                f"targets[{i}]: {labels_shape[0]} labels but {boxes_shape[0]} boxes",
                field="boxes",
                image_index=i,
                value=int(boxes_shape[0]),
            )
        if device is None:
            device = labels.device
        if labels.device != device or boxes.device != device:
            key, tensor = ("labels", labels) if labels.device != device else ("boxes", boxes)
            raise CdnInputError(
                f"targets[{i}][{key!r}]: on {tensor.device}, but targets[0]['labels'] is on {device}",
                field=key,
                image_index=i,
                value=tensor.device,
            )
        labels_list.append(labels)
        boxes_list.append(boxes)
    return labels_list, boxes_list


def _explain_entries(i: int, target) -> None:
    """Raise for a missing key or a value that is not a tensor (tensor subclasses pass)."""
    for key in ("labels", "boxes"):
        if key not in target:
            raise CdnInputError(
                f"targets[{i}]: missing key {key!r} (has {sorted(map(str, target))})",
                field=key,
                image_index=i,
                value=None,
            )
        if not isinstance(target[key], torch.Tensor):
            raise CdnInputError(
                f"targets[{i}][{key!r}]: expected a torch.Tensor, got {_type_name(target[key])}",
                field=key,
                image_index=i,
                value=type(target[key]),
            )


# --- values (one sync) ------------------------------------------------------------------


def _corners(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(low corners [n, 2], high corners [n, 2]) in float64."""
    boxes = boxes.double()
    centre, half = boxes[:, :2], 0.5 * boxes[:, 2:]
    return centre - half, centre + half


# (cx, cy, w, h) @ _CORNER_MAP + bias = (x1 + tol, y1 + tol, 1 + tol - x2, 1 + tol - y2, w, h):
# the box is valid iff every column is > 0. Every product is exact (coefficients 0, +-1,
# +-0.5) and a NaN or inf anywhere makes the columns where it meets a 0 coefficient NaN,
# so one ``amin() > 0`` checks finiteness, sides and corners together.
_CORNER_MAP = (
    (1.0, 0.0, -1.0, 0.0, 0.0, 0.0),
    (0.0, 1.0, 0.0, -1.0, 0.0, 0.0),
    (-0.5, 0.0, -0.5, 0.0, 1.0, 0.0),
    (0.0, -0.5, 0.0, -0.5, 0.0, 1.0),
)
_MAP_CACHE: dict = {}


def _corner_map(dtype: torch.dtype, device: torch.device, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    key = (dtype, device, tol)
    if key not in _MAP_CACHE:
        bias = torch.tensor([tol, tol, 1 + tol, 1 + tol, 0.0, 0.0], dtype=dtype, device=device)
        _MAP_CACHE[key] = (bias, torch.tensor(_CORNER_MAP, dtype=dtype, device=device))
    return _MAP_CACHE[key]


def _check_values(labels_list: list, boxes_list: list, num_classes: int) -> None:
    with torch.no_grad():
        labels = labels_list[0] if len(labels_list) == 1 else torch.cat(labels_list)
        if labels.numel() == 0:
            return
        boxes = boxes_list[0] if len(boxes_list) == 1 else torch.cat(boxes_list)
        if boxes.dtype in (torch.float16, torch.bfloat16):
            boxes = boxes.float()  # corners in float32, so only the stored values' rounding counts
        tol = max(corner_tolerance(b.dtype) for b in boxes_list)
        bias, corner_map = _corner_map(boxes.dtype, boxes.device, tol)
        bad = ~(torch.addmm(bias, boxes, corner_map).amin() > 0)  # True for NaN too
        label_min, label_max = torch.aminmax(labels)
        bad = bad | (label_min < 0)
        if num_classes <= torch.iinfo(labels.dtype).max:  # else no label can reach it (and the int would wrap)
            bad = bad | (label_max >= num_classes)
        if not bool(bad):  # the one host sync
            return
    # the slow path is the authority: it names the first offender; the batch check can
    # only disagree with it within an ulp of the corner tolerance, where the box is accepted
    for i, (image_labels, image_boxes) in enumerate(zip(labels_list, boxes_list, strict=True)):
        _name_first_bad_value(i, image_labels, image_boxes, num_classes)


def _name_first_bad_value(i: int, labels: torch.Tensor, boxes: torch.Tensor, num_classes: int) -> None:
    """Raise CdnInputError for the first bad label or box of image i (the slow path)."""
    if labels.numel() == 0:
        return
    for row, label in enumerate(labels.tolist()):
        if not 0 <= label < num_classes:
            note = " (num_classes is the padding class, reserved for padding rows)" if label == num_classes else ""
            raise CdnInputError(
                f"targets[{i}]['labels'][{row}]: label {label} outside [0, num_classes={num_classes}){note}",
                field="labels",
                image_index=i,
                row=row,
                value=label,
            )
    tol = corner_tolerance(boxes.dtype)
    # the shortest text that reads back as the stored value (float32's for narrower dtypes)
    fmt = repr if boxes.dtype == torch.float64 else (lambda v: repr(float(str(numpy.float32(v)))))
    low, high = (c.double().tolist() for c in _corners(boxes))
    for row, box in enumerate(boxes.double().tolist()):
        where = f"targets[{i}]['boxes'][{row}]"
        shown = "[" + ", ".join(fmt(v) for v in box) + "]"

        def fail(message, value, where=where, shown=shown, row=row):
            raise CdnInputError(
                f"{where}: {message} in box (cx, cy, w, h) = {shown}",
                field="boxes",
                image_index=i,
                row=row,
                value=value,
            )

        for value in box:
            if not math.isfinite(value):
                fail(f"non-finite value {value}", value)
        for name, value in (("width", box[2]), ("height", box[3])):
            if value <= 0:
                raise CdnInputError(
                    f"{where}: {name} {fmt(value)} <= 0 (w and h of a normalized cxcywh box must be > 0)",
                    field="boxes",
                    image_index=i,
                    row=row,
                    value=value,
                )
        for name, value in zip(("x1 = cx - w/2", "y1 = cy - h/2"), low[row], strict=True):
            if value < -tol:
                fail(f"corner {name} = {fmt(value)} < 0 (tolerance {tol:g})", value)
        for name, value in zip(("x2 = cx + w/2", "y2 = cy + h/2"), high[row], strict=True):
            if value > 1 + tol:
                fail(f"corner {name} = {fmt(value)} > 1 (tolerance {tol:g})", value)
