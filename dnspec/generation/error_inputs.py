"""Error inputs: valid calls with exactly one thing broken (PyTorch OpInfo's ``error_inputs``
idea, as Hypothesis strategies).

:func:`error_cases` takes any strategy of valid :class:`~dnspec.generation.cases.CdnCase` and returns
a strategy of :class:`ErrorCase`: the call with one input broken, the name of the kind of
breakage (a key of :data:`ERROR_KINDS`), and the ``field`` that
:func:`dnspec.contract.validation.validate_cdn_inputs` must name for it (plus the image index for
per-image kinds). A broken call does not fit ``CdnCase`` (a missing key, a tuple where a
dict belongs, a string where an int belongs), so it is held in raw form as a
:class:`RawCall`, which calls an implementation the way ``CdnCase.call`` does.

Before breaking anything, the valid case is made one the builder must act on: at least
one box and ``num_denoising >= 1`` (adding a valid box or raising num_denoising keeps it
valid), so no implementation gets by by returning early. Every kind then changes one
thing only: a validated call raises with exactly the declared field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from hypothesis import strategies as st

from dnspec.generation.cases import CdnCase

# --- the raw form of a call ------------------------------------------------------------


def _clone(obj):
    """Deep copy of tensors inside lists, tuples and dicts (anything else as is)."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {key: _clone(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(value) for value in obj)
    return obj


@dataclass(frozen=True, eq=False)
class RawCall:
    """The arguments of one call, any of which may be malformed. ``base`` is the valid
    case it was derived from; its class embedding is used, cut to its first
    ``embed_rows`` rows and moved to ``embed_device`` when those are set."""

    base: CdnCase
    targets: object
    num_classes: object
    num_queries: object
    num_denoising: object
    label_noise_ratio: object
    box_noise_scale: object
    embed_rows: int | None = None
    embed_device: str | None = None

    @classmethod
    def from_case(cls, case: CdnCase) -> RawCall:
        return cls(
            base=case,
            targets=case.targets,
            num_classes=case.num_classes,
            num_queries=case.num_queries,
            num_denoising=case.num_denoising,
            label_noise_ratio=case.label_noise_ratio,
            box_noise_scale=case.box_noise_scale,
        )

    @property
    def seed(self) -> int:
        return self.base.seed

    def with_(self, **changes) -> RawCall:
        return replace(self, **changes)

    def class_embed(self) -> torch.nn.Module:
        embed = self.base.class_embed()
        if self.embed_rows is not None:
            weight = embed.weight.detach()[: self.embed_rows].clone()
            embed = torch.nn.Embedding(weight.shape[0], weight.shape[1]).to(device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                embed.weight.copy_(weight)
        if self.embed_device is not None:
            embed = embed.to(self.embed_device)
        return embed

    def fresh_targets(self):
        """A deep copy of the targets (a list when they are a list or tuple, as upstream
        callers pass them), so a call cannot change the case."""
        targets = _clone(self.targets)
        return list(targets) if isinstance(targets, tuple) else targets

    def args(self, class_embed=None) -> tuple:
        """Positional arguments in the upstream order."""
        return (
            self.fresh_targets(),
            self.num_classes,
            self.num_queries,
            self.class_embed() if class_embed is None else class_embed,
            self.num_denoising,
            self.label_noise_ratio,
            self.box_noise_scale,
        )

    def call(self, impl, class_embed=None, **kwargs):
        """Seed torch's global RNG with the base case's seed and call ``impl``."""
        args = self.args(class_embed)
        torch.manual_seed(self.seed)
        with torch.no_grad():
            return impl(*args, **kwargs)


@dataclass(frozen=True, eq=False)
class ErrorCase:
    """A call with one thing broken: ``kind`` (a key of ERROR_KINDS), the ``field`` the
    validator must name, the image at fault (None for the configuration), and
    ``detail``, what was changed, in words."""

    case: RawCall
    kind: str
    field: str
    image_index: int | None
    detail: str

    def __repr__(self) -> str:
        return (
            f"ErrorCase(kind={self.kind!r}, field={self.field!r}, image_index={self.image_index!r}, "
            f"detail={self.detail!r}, base={self.case.base!r})"
        )


# --- helpers for breakers ----------------------------------------------------------------


def _activate(draw, case: CdnCase) -> CdnCase:
    """The same valid case, made one the builder must act on (>= 1 box, num_denoising >= 1)."""
    if case.num_denoising <= 0:
        case = case.with_config(num_denoising=draw(st.integers(1, 200)))
    if sum(case.counts) == 0:
        box = {
            "labels": torch.tensor([draw(st.integers(0, case.num_classes - 1))], dtype=torch.int64, device=case.device),
            "boxes": torch.tensor([[0.5, 0.5, 0.25, 0.25]], dtype=case.dtype, device=case.device),
        }
        if case.batch_size == 0:
            case = replace(case, targets=(box,))
        else:
            i = draw(st.integers(0, case.batch_size - 1))
            case = replace(case, targets=_replace_image(case.targets, i, box))
    return case


def _replace_image(targets: tuple, i: int, image) -> tuple:
    return tuple(image if j == i else t for j, t in enumerate(targets))


def _pick_box(draw, case: CdnCase) -> tuple[int, int]:
    """(image, row) of a real box."""
    i = draw(st.sampled_from([j for j, n in enumerate(case.counts) if n]))
    return i, draw(st.integers(0, case.counts[i] - 1))


def _pick_nonempty_image(draw, case: CdnCase) -> int:
    return draw(st.sampled_from([j for j, n in enumerate(case.counts) if n]))


def _image(case: CdnCase, i: int) -> dict:
    return {key: value.clone() for key, value in case.targets[i].items()}


@dataclass(frozen=True)
class Broken:
    """What a breaker returns: the broken call and what it broke."""

    call: RawCall
    field: str
    image_index: int | None
    detail: str


def _break_image(case: CdnCase, i: int, image, field: str, detail: str) -> Broken:
    raw = RawCall.from_case(case).with_(targets=_replace_image(case.targets, i, image))
    return Broken(raw, field, i, detail)


def _break_config(case: CdnCase, name: str, value) -> Broken:
    return Broken(RawCall.from_case(case).with_(**{name: value}), name, None, f"{name} = {value!r}")


# --- the breakers, one per kind ----------------------------------------------------------


def _set_box_value(draw, case, value_strategy, columns, what):
    i, row = _pick_box(draw, case)
    column = draw(st.sampled_from(columns))
    value = draw(value_strategy)
    image = _image(case, i)
    image["boxes"][row, column] = value
    name = ["cx", "cy", "w", "h"][column]
    return _break_image(case, i, image, "boxes", f"targets[{i}]['boxes'][{row}]: {name} = {value!r} ({what})")


def nan_box(draw, case):
    return _set_box_value(draw, case, st.just(math.nan), [0, 1, 2, 3], "NaN")


def inf_box(draw, case):
    return _set_box_value(draw, case, st.sampled_from([math.inf, -math.inf]), [0, 1, 2, 3], "infinite")


def zero_width(draw, case):
    return _set_box_value(draw, case, st.just(0.0), [2], "zero width")


def negative_height(draw, case):
    # h -> -h keeps cy -+ |h|/2 inside [0, 1]: only the sign is wrong
    i, row = _pick_box(draw, case)
    image = _image(case, i)
    image["boxes"][row, 3] = -image["boxes"][row, 3]
    return _break_image(
        case, i, image, "boxes", f"targets[{i}]['boxes'][{row}]: h = {float(image['boxes'][row, 3])!r} (negated)"
    )


def corner_outside(draw, case):
    """Move the box so one corner leaves [0, 1] by 0.1..0.5 (past any dtype's tolerance),
    or make it wider or taller than the image, centred."""
    i, row = _pick_box(draw, case)
    image = _image(case, i)
    box = image["boxes"][row].double()
    axis = draw(st.integers(0, 1))
    overshoot = draw(st.floats(0.1, 0.5))
    how = draw(st.sampled_from(["low", "high", "oversized"]))
    side = float(box[2 + axis])
    if how == "low":
        centre, size = side / 2 - overshoot, side
    elif how == "high":
        centre, size = 1 - side / 2 + overshoot, side
    else:
        centre, size = 0.5, 1 + 2 * overshoot
    image["boxes"][row, axis] = centre
    image["boxes"][row, 2 + axis] = size
    detail = f"targets[{i}]['boxes'][{row}]: corner {'xy'[axis]} {how} by {overshoot:.3g} (c = {centre:.4g}, side = {size:.4g})"
    return _break_image(case, i, image, "boxes", detail)


def _set_label(draw, case, value_of, what):
    i, row = _pick_box(draw, case)
    image = _image(case, i)
    value = value_of(draw, case)
    image["labels"][row] = value
    return _break_image(case, i, image, "labels", f"targets[{i}]['labels'][{row}] = {value} ({what})")


def label_equals_num_classes(draw, case):
    return _set_label(draw, case, lambda draw, case: case.num_classes, "== num_classes, the padding class")


def label_out_of_range(draw, case):
    return _set_label(draw, case, lambda draw, case: case.num_classes + draw(st.integers(1, 1000)), "> num_classes")


def negative_label(draw, case):
    return _set_label(draw, case, lambda draw, case: draw(st.integers(-1000, -1)), "negative")


def float_labels(draw, case):
    i = _pick_nonempty_image(draw, case)
    image = _image(case, i)
    image["labels"] = image["labels"].to(torch.float32)
    return _break_image(case, i, image, "labels", f"targets[{i}]['labels'] as float32 (integral values)")


def labels_not_1d(draw, case):
    i = _pick_nonempty_image(draw, case)
    image = _image(case, i)
    image["labels"] = image["labels"][:, None]
    return _break_image(case, i, image, "labels", f"targets[{i}]['labels'] of shape [n, 1]")


def int_boxes(draw, case):
    i = _pick_nonempty_image(draw, case)
    image = _image(case, i)
    image["boxes"] = image["boxes"].to(torch.int64)
    return _break_image(case, i, image, "boxes", f"targets[{i}]['boxes'] cast to int64 (truncated)")


def wrong_box_shape(draw, case):
    i = _pick_nonempty_image(draw, case)
    image = _image(case, i)
    boxes = image["boxes"]
    shapes = ["drop a column [n, 3]", "extra column [n, 5]", "flattened [4n]", "batched [1, n, 4]"]
    if boxes.shape[0] != 4:
        shapes.append("transposed [4, n]")
    how = draw(st.sampled_from(shapes))
    image["boxes"] = {
        "drop a column [n, 3]": lambda: boxes[:, :3].clone(),
        "extra column [n, 5]": lambda: torch.cat([boxes, boxes[:, :1]], dim=1),
        "flattened [4n]": lambda: boxes.reshape(-1).clone(),
        "batched [1, n, 4]": lambda: boxes[None].clone(),
        "transposed [4, n]": lambda: boxes.t().contiguous(),
    }[how]()
    return _break_image(case, i, image, "boxes", f"targets[{i}]['boxes'] {how}")


def length_mismatch(draw, case):
    """One box or one label more or fewer than the other (reported on 'boxes': the labels
    set an image's box count, as upstream counts them)."""
    i = draw(st.integers(0, case.batch_size - 1))
    image = _image(case, i)
    n = len(image["labels"])
    options = ["add a box", "add a label"] + (["drop a box", "drop a label"] if n else [])
    how = draw(st.sampled_from(options))
    extra_box = torch.tensor([[0.5, 0.5, 0.25, 0.25]], dtype=image["boxes"].dtype, device=image["boxes"].device)
    extra_label = torch.tensor([0], dtype=image["labels"].dtype, device=image["labels"].device)
    if how == "add a box":
        image["boxes"] = torch.cat([image["boxes"], extra_box])
    elif how == "add a label":
        image["labels"] = torch.cat([image["labels"], extra_label])
    elif how == "drop a box":
        image["boxes"] = image["boxes"][:-1].clone()
    else:
        image["labels"] = image["labels"][:-1].clone()
    detail = f"targets[{i}]: {how} ({len(image['labels'])} labels, {len(image['boxes'])} boxes)"
    return _break_image(case, i, image, "boxes", detail)


def missing_key(draw, case):
    i = draw(st.integers(0, case.batch_size - 1))
    key = draw(st.sampled_from(["labels", "boxes"]))
    image = {k: v for k, v in _image(case, i).items() if k != key}
    return _break_image(case, i, image, key, f"targets[{i}] without {key!r}")


def image_not_a_dict(draw, case):
    i = draw(st.integers(0, case.batch_size - 1))
    image = _image(case, i)
    return _break_image(case, i, (image["labels"], image["boxes"]), "targets", f"targets[{i}] a tuple (labels, boxes)")


def targets_not_a_list(draw, case):
    how = draw(st.sampled_from(["the first image's dict", "one tensor of all boxes"]))
    targets = torch.cat([t["boxes"] for t in case.targets]) if how == "one tensor of all boxes" else _image(case, 0)
    return Broken(RawCall.from_case(case).with_(targets=targets), "targets", None, f"targets = {how}")


def _other_device(device: str) -> str:
    return "cuda" if device.split(":")[0] != "cuda" else "cpu"


def device_mismatch(draw, case):
    """One tensor (a label or box tensor of one image, or the class embedding) on another
    device than targets[0]['labels'] (needs CUDA)."""
    other = _other_device(case.device)
    choices = ["class_embed"] + [
        (i, key) for i in range(case.batch_size) for key in ("labels", "boxes") if (i, key) != (0, "labels")
    ]
    choice = draw(st.sampled_from(choices))
    if choice == "class_embed":
        return Broken(RawCall.from_case(case).with_(embed_device=other), "class_embed", None, f"class_embed on {other}")
    i, key = choice
    image = _image(case, i)
    image[key] = image[key].to(other)
    return _break_image(case, i, image, key, f"targets[{i}][{key!r}] on {other}")


def _cuda_reason() -> str | None:
    return None if torch.cuda.is_available() else "needs a CUDA device for a second device"


def embed_too_small(draw, case):
    rows = draw(st.integers(1, case.num_classes))
    raw = RawCall.from_case(case).with_(embed_rows=rows)
    return Broken(raw, "class_embed", None, f"class_embed with {rows} rows < num_classes + 1 = {case.num_classes + 1}")


def num_classes_not_positive(draw, case):
    return _break_config(case, "num_classes", draw(st.integers(-5, 0)))


def negative_num_queries(draw, case):
    return _break_config(case, "num_queries", draw(st.integers(-500, -1)))


def num_denoising_not_int(draw, case):
    return _break_config(case, "num_denoising", float(draw(st.integers(1, 200))) + draw(st.sampled_from([0.0, 0.5])))


def ratio_out_of_range(draw, case):
    value = draw(st.one_of(st.floats(1.0, 10.0, exclude_min=True), st.floats(-10.0, -1e-6), st.just(math.nan)))
    return _break_config(case, "label_noise_ratio", value)


def negative_scale(draw, case):
    return _break_config(case, "box_noise_scale", draw(st.floats(-10.0, -1e-6)))


def scale_not_finite(draw, case):
    return _break_config(case, "box_noise_scale", draw(st.sampled_from([math.inf, math.nan])))


# --- the registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorKind:
    """One way to break a valid call. ``fields``: the field(s) it can break (missing_key
    and device_mismatch break one of several); ``unavailable``: returns why it cannot be
    generated here (None when it can)."""

    name: str
    fields: tuple[str, ...]
    summary: str
    breaker: Callable = field(repr=False)
    unavailable: Callable[[], str | None] = field(default=lambda: None, repr=False)


def _kinds(*entries) -> dict[str, ErrorKind]:
    return {kind.name: kind for kind in (ErrorKind(*entry) for entry in entries)}


ERROR_KINDS: dict[str, ErrorKind] = _kinds(
    ("nan_box", ("boxes",), "one box coordinate is NaN", nan_box),
    ("inf_box", ("boxes",), "one box coordinate is +inf or -inf", inf_box),
    ("zero_width", ("boxes",), "one box has w == 0", zero_width),
    ("negative_height", ("boxes",), "one box has h < 0 (its corners stay inside [0, 1])", negative_height),
    ("corner_outside", ("boxes",), "one box has a corner 0.1..0.5 outside [0, 1]", corner_outside),
    ("int_boxes", ("boxes",), "one image's boxes are int64", int_boxes),
    ("wrong_box_shape", ("boxes",), "one image's boxes are [n, 3], [n, 5], [4n], [1, n, 4] or [4, n]", wrong_box_shape),
    ("length_mismatch", ("boxes",), "one image has one box or one label too many or too few", length_mismatch),
    ("label_equals_num_classes", ("labels",), "one label is num_classes (the padding class)", label_equals_num_classes),
    ("label_out_of_range", ("labels",), "one label is > num_classes", label_out_of_range),
    ("negative_label", ("labels",), "one label is negative", negative_label),
    ("float_labels", ("labels",), "one image's labels are float32", float_labels),
    ("labels_not_1d", ("labels",), "one image's labels are [n, 1]", labels_not_1d),
    ("missing_key", ("labels", "boxes"), "one image lacks 'labels' or 'boxes'", missing_key),
    ("image_not_a_dict", ("targets",), "one image is a (labels, boxes) tuple", image_not_a_dict),
    ("targets_not_a_list", ("targets",), "targets is one image's dict or one tensor", targets_not_a_list),
    (
        "device_mismatch",
        ("labels", "boxes", "class_embed"),
        "one tensor on another device",
        device_mismatch,
        _cuda_reason,
    ),
    ("embed_too_small", ("class_embed",), "class_embed has fewer than num_classes + 1 rows", embed_too_small),
    ("num_classes_not_positive", ("num_classes",), "num_classes <= 0", num_classes_not_positive),
    ("negative_num_queries", ("num_queries",), "num_queries < 0", negative_num_queries),
    ("num_denoising_not_int", ("num_denoising",), "num_denoising is a float", num_denoising_not_int),
    ("ratio_out_of_range", ("label_noise_ratio",), "label_noise_ratio > 1, < 0 or NaN", ratio_out_of_range),
    ("negative_scale", ("box_noise_scale",), "box_noise_scale < 0", negative_scale),
    ("scale_not_finite", ("box_noise_scale",), "box_noise_scale is inf or NaN", scale_not_finite),
)


def available_kinds() -> list[str]:
    """The kinds that can be generated here (device_mismatch needs CUDA)."""
    return [name for name, kind in ERROR_KINDS.items() if kind.unavailable() is None]


def error_cases(valid_cases: st.SearchStrategy[CdnCase], kinds=None) -> st.SearchStrategy[ErrorCase]:
    """Valid cases from ``valid_cases`` with exactly one thing broken, one kind drawn from
    ``kinds`` (default: every available kind). Asking for an unavailable kind raises
    ValueError saying why."""
    names = list(available_kinds() if kinds is None else kinds)
    for name in names:
        if name not in ERROR_KINDS:
            raise ValueError(f"error_cases: unknown kind {name!r}; choose from {', '.join(ERROR_KINDS)}")
        reason = ERROR_KINDS[name].unavailable()
        if reason:
            raise ValueError(f"error_cases: kind {name!r} cannot be generated here: {reason}")
    if not names:
        raise ValueError("error_cases: no kinds to generate")

    @st.composite
    def broken(draw) -> ErrorCase:
        name = draw(st.sampled_from(names))
        case = _activate(draw, draw(valid_cases))
        result = ERROR_KINDS[name].breaker(draw, case)
        return ErrorCase(result.call, name, result.field, result.image_index, result.detail)

    return broken()
