"""Broken variants of the reference CDN builder, one small bug each: the suite's proof that
every property can fail ("a property that cannot fail is a defect").

Three ways a variant is written, the smallest that can hold its bug:

``_wraps_reference``  call the reference (forwarding ``noise=``), then corrupt one output;
``_draws_noise``      a copy of :func:`dnspec.contract.noise.draw_noise` with the bug in the draw,
                      applied by the reference's own :func:`~dnspec.contract.reference.build_from_noise`
                      (an injected draw is applied as given, so only the draw is wrong);
``_copy``             a copy of the reference's :func:`~dnspec.contract.reference.build_from_noise`
                      (and of the draw) with ``bug`` / ``fixes`` hooks, for bugs that live
                      inside the transform. With no hook set it is the reference line for
                      line (``copy_control`` checks that, bit for bit), so a variant's
                      failures come from its one bug.

``BROKEN`` maps a variant name to ``(Implementation, expected)``: ``expected`` holds the
properties that MUST catch it, by name (``dnspec.checks.suite.BY_NAME``) or, for properties with
variants, by the suite's label ``name[variant]`` (``device_agreement[cpu]``,
``dtype_agreement[bfloat16]``). An advisory catches a variant when it fails under
``RunOptions(strict=True)``; for a variant that declares ``fixes_advisories`` it must fail
without strict. ``CONTROLS`` are correct implementations that must pass everything.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import torch

from dnspec.contract.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid
from dnspec.contract.decode import recover_labels
from dnspec.contract.noise import NoiseDraw
from dnspec.contract.reference import NO_OUTPUT, build_from_noise
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.contract.validation import validate_cdn_inputs
from dnspec.implementations.specs import Implementation

from .history_variants import BROKEN as CALL_HISTORY
from .stopping_variants import BROKEN as STATE_AND_NOISE

# --- shared pieces ---------------------------------------------------------------------


def _box_dtype(targets) -> torch.dtype:
    for t in targets:
        return t["boxes"].dtype
    return torch.get_default_dtype()


def _num_dn_rows(targets, num_denoising: int) -> int:
    max_gt = max((len(t["labels"]) for t in targets), default=0)
    return 2 * max_gt * max(1, num_denoising // max_gt)


def _wraps_reference(corrupt):
    """An implementation that calls the reference, then hands its outputs and the call's
    arguments to ``corrupt(outputs, call)``, whose bug is the variant."""

    def fn(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        *,
        noise=None,
    ):
        call = dict(
            targets=targets,
            num_classes=num_classes,
            num_queries=num_queries,
            class_embed=class_embed,
            num_denoising=num_denoising,
            label_noise_ratio=label_noise_ratio,
            box_noise_scale=box_noise_scale,
            noise=noise,
        )
        outputs = reference(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising,
            label_noise_ratio,
            box_noise_scale,
            noise=noise,
        )
        return corrupt(outputs, call)

    fn.__name__, fn.__doc__ = corrupt.__name__, corrupt.__doc__
    return fn


def _draws_noise(bug: str):
    """The reference with a copy of ``draw_noise`` carrying ``bug`` (see :func:`_draw`)."""

    def fn(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        *,
        noise=None,
    ):
        validate_cdn_inputs(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
        )
        if num_denoising <= 0 or max((len(t["labels"]) for t in targets), default=0) == 0:
            return NO_OUTPUT
        if noise is None:
            noise = _draw(
                len(targets),
                _num_dn_rows(targets, num_denoising),
                num_classes,
                label_noise_ratio,
                box_noise_scale,
                device=targets[0]["labels"].device,
                box_dtype=_box_dtype(targets),
                bug=bug,
                group_rows=2 * max(len(t["labels"]) for t in targets),
            )
        return build_from_noise(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise
        )

    fn.__name__ = f"draw_{bug}"
    return fn


def _draw(
    batch_size,
    num_dn_rows,
    num_classes,
    label_noise_ratio,
    box_noise_scale,
    *,
    device="cpu",
    box_dtype=torch.float32,
    generator=None,
    bug=None,
    fixes=frozenset(),
    group_rows=None,
) -> NoiseDraw:
    """Copy of :func:`dnspec.contract.noise.draw_noise` (same order, shapes and dtypes), with hooks;
    ``group_rows`` (2 * max_gt) is used by the bugs that depend on the group layout only."""
    shape = (batch_size, num_dn_rows)
    label_flip = replacement_label = box_sign = box_magnitude = None
    if label_noise_ratio > 0:
        uniform = torch.rand(shape, dtype=torch.float32, device=device, generator=generator)
        label_flip = uniform < (label_noise_ratio * 0.5)
        if bug == "flip_prob_ratio":
            label_flip = uniform < label_noise_ratio  # BUG: flips with probability ratio, not ratio / 2
        high = num_classes
        if bug == "replacement_excludes_last":
            high = max(num_classes - 1, 1)  # BUG: replacement from [0, num_classes - 1): the last class never drawn
        if "other_class" in fixes:
            high = max(num_classes - 1, 1)  # fix: an offset to one of the num_classes - 1 other classes
        replacement_label = torch.randint(0, high, shape, dtype=torch.int32, device=device, generator=generator)
        if bug == "label_noise_same_every_group":
            # BUG: the first group's label noise tiled over every group, not drawn per group
            reps = num_dn_rows // group_rows
            label_flip, replacement_label = (
                label_flip[:, :group_rows].tile(1, reps),
                replacement_label[:, :group_rows].tile(1, reps),
            )
        if bug == "label_noise_positive_rows_only":
            # BUG: label noise on positive rows only, at twice the rate (so the rate over all rows looks right)
            negative = torch.arange(num_dn_rows, device=device) % group_rows >= group_rows // 2
            label_flip = (uniform < label_noise_ratio) & ~negative
    if box_noise_scale > 0:
        box_shape = (*shape, 4)
        if bug == "same_noise_all_coords":
            box_shape = (*shape, 1)  # BUG: one draw per row, shared by its 4 coordinates (expanded below)
        if bug == "same_noise_every_group":
            box_shape = (batch_size, group_rows, 4)  # BUG: one group's noise (tiled below)
        box_sign = torch.randint(0, 2, box_shape, dtype=box_dtype, device=device, generator=generator) * 2.0 - 1.0
        if bug == "signs_biased":
            # BUG: sign from rand < 0.55 instead of a fair coin
            box_sign = (torch.rand(box_shape, dtype=box_dtype, device=device, generator=generator) < 0.55).to(
                box_dtype
            ) * 2.0 - 1.0
        if bug == "signs_biased_per_coordinate":
            # BUG: x signs + with probability 0.55, y signs with 0.45 (fair over all four together)
            p_up = torch.tensor([0.55, 0.45, 0.55, 0.45], dtype=box_dtype, device=device)
            box_sign = (torch.rand(box_shape, dtype=box_dtype, device=device, generator=generator) < p_up).to(
                box_dtype
            ) * 2.0 - 1.0
        if bug == "corner_signs_mirrored":
            # BUG: x2, y2 take the opposite sign of x1, y1: boxes only grow or shrink about their centre, never shift
            box_sign = torch.cat([box_sign[..., :2], -box_sign[..., :2]], dim=-1)
        box_magnitude = torch.rand(box_shape, dtype=box_dtype, device=device, generator=generator)
        if bug == "magnitudes_0_9":
            box_magnitude = box_magnitude * 0.9  # BUG: magnitudes from U[0, 0.9), not U[0, 1)
        if bug == "same_noise_all_coords":
            box_sign, box_magnitude = box_sign.expand(*shape, 4), box_magnitude.expand(*shape, 4)
        if bug == "negative_reuses_positive_noise":
            # BUG: each negative row reuses the draw of its positive twin (same slot, same group)
            m = group_rows // 2
            twin = torch.arange(num_dn_rows, device=device)
            twin = torch.where(twin % group_rows >= m, twin - m, twin)
            box_sign, box_magnitude = box_sign[:, twin], box_magnitude[:, twin]
        if bug == "same_noise_every_group":
            # BUG: the first group's noise tiled over every group, not drawn per group
            reps = num_dn_rows // box_sign.shape[1]
            box_sign, box_magnitude = box_sign.tile(1, reps, 1), box_magnitude.tile(1, reps, 1)
    return NoiseDraw(label_flip, replacement_label, box_sign, box_magnitude)


def _copy(bug: str | None = None, fixes: frozenset = frozenset()):
    """A copy of the reference (validation, draw, transform) with a ``bug`` hook in the
    transform and ``fixes`` (the advisories' fixes) in the draw and the transform."""

    def fn(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        *,
        noise=None,
    ):
        validate_cdn_inputs(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
        )
        if (
            num_denoising == 0 if bug == "off_only_at_zero" else num_denoising <= 0
        ):  # BUG (off_only_at_zero): == 0, not <= 0
            return NO_OUTPUT
        max_gt_num = max((len(t["labels"]) for t in targets), default=0)
        if max_gt_num == 0:
            return NO_OUTPUT
        if noise is None:
            num_dn_rows = 2 * max_gt_num * (num_denoising // max_gt_num or 1)  # negative with off_only_at_zero
            noise = _draw(
                len(targets),
                num_dn_rows,
                num_classes,
                label_noise_ratio,
                box_noise_scale,
                device=targets[0]["labels"].device,
                box_dtype=_box_dtype(targets),
                fixes=fixes,
            )
        return _build_copy(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising,
            label_noise_ratio,
            box_noise_scale,
            noise,
            bug,
            fixes,
        )

    fn.__name__ = f"copy_{bug or 'control'}"
    return fn


def _build_copy(
    targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise, bug, fixes
):
    """Copy of :func:`dnspec.contract.reference.build_from_noise`; every departure is marked BUG or fix."""
    num_gts = [len(t["labels"]) for t in targets]
    max_gt_num = max(num_gts)
    device = targets[0]["labels"].device
    num_group = num_denoising // max_gt_num
    num_group = 1 if num_group == 0 else num_group
    bs = len(num_gts)

    input_query_class = torch.full([bs, max_gt_num], num_classes, dtype=torch.int32, device=device)
    input_query_bbox = torch.zeros([bs, max_gt_num, 4], dtype=_box_dtype(targets), device=device)
    if bug == "padding_boxes_nonzero":
        # BUG: the box buffer starts at 0.5, not 0: padding rows hold a box, and it gets noised
        input_query_bbox = torch.full([bs, max_gt_num, 4], 0.5, dtype=_box_dtype(targets), device=device)
    pad_gt_mask = torch.zeros([bs, max_gt_num], dtype=torch.bool, device=device)
    for i in range(bs):
        num_gt = num_gts[i]
        if num_gt > 0:
            input_query_class[i, :num_gt] = targets[i]["labels"]
            input_query_bbox[i, :num_gt] = targets[i]["boxes"]
            pad_gt_mask[i, :num_gt] = 1

    input_query_class = input_query_class.tile([1, 2 * num_group])
    input_query_bbox = input_query_bbox.tile([1, 2 * num_group, 1])
    pad_gt_mask = pad_gt_mask.tile([1, 2 * num_group])
    negative_gt_mask = torch.zeros([bs, max_gt_num * 2, 1], dtype=input_query_bbox.dtype, device=device)
    negative_gt_mask[:, max_gt_num:] = 1
    if bug == "halves_swapped":
        # BUG: [neg m | pos m] instead of [pos m | neg m] in each group
        negative_gt_mask = 1 - negative_gt_mask
    negative_gt_mask = negative_gt_mask.tile([1, num_group, 1])
    positive_gt_mask = 1 - negative_gt_mask
    positive_gt_mask = positive_gt_mask.squeeze(-1) * pad_gt_mask
    dn_positive_idx = torch.nonzero(positive_gt_mask)[:, 1]
    dn_positive_idx = torch.split(dn_positive_idx, [n * num_group for n in num_gts])
    num_dn = int(max_gt_num * 2 * num_group)

    if label_noise_ratio > 0:
        new_label = noise.replacement_label.to(input_query_class.dtype)
        if "other_class" in fixes:
            # fix: an offset from the label, so the replacement is one of the other classes
            new_label = (input_query_class + 1 + new_label) % num_classes
        if bug == "label_shift":
            new_label = (
                input_query_class + 1
            ) % num_classes  # BUG: a flipped label becomes label + 1, not a random class
        flip = noise.label_flip & pad_gt_mask
        if bug == "label_noise_on_padding":
            flip = noise.label_flip  # BUG: the flip is not masked to real rows: padding rows get real classes
        input_query_class = torch.where(flip, new_label, input_query_class)

    if box_noise_scale > 0:
        known_bbox = box_cxcywh_to_xyxy(input_query_bbox)
        diff = torch.tile(input_query_bbox[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        if bug == "scale_twice":
            diff = diff * box_noise_scale  # BUG: box_noise_scale applied twice
        rand_sign = noise.box_sign.to(input_query_bbox.dtype)
        rand_part = noise.box_magnitude.to(input_query_bbox.dtype)
        if bug == "negatives_positive_range":
            rand_part = rand_part * 1.0  # BUG: negatives not pushed out by 1: |u| < 1 on every row
        elif bug == "mutates_injected_draw":
            # BUG: += on an alias of the caller's draw (.to() of the same dtype is no copy):
            # the output is right, but the draw comes back with negatives' magnitudes + 1
            rand_part += negative_gt_mask
        else:
            rand_part = (rand_part + 1.0) * negative_gt_mask + rand_part * (1 - negative_gt_mask)
        rand_part = rand_part * rand_sign
        known_bbox += rand_part * diff
        if bug != "no_clip":  # BUG (no_clip): the noised corners are not clipped to [0, 1]
            known_bbox.clip_(min=0.0, max=1.0)
        if "reorder_corners" in fixes:
            # fix: crossed corners are reordered (min, max) instead of collapsing the side
            lo, hi = (
                torch.minimum(known_bbox[..., :2], known_bbox[..., 2:]),
                torch.maximum(known_bbox[..., :2], known_bbox[..., 2:]),
            )
            known_bbox = torch.cat([lo, hi], dim=-1)
        input_query_bbox = box_xyxy_to_cxcywh(known_bbox)
        if bug == "crossed_width_flipped":
            input_query_bbox[input_query_bbox < 0] *= -1  # BUG: a crossed box keeps side |w| instead of collapsing
        input_query_bbox = inverse_sigmoid(input_query_bbox)
        noised_bbox = input_query_bbox
    elif "logit_at_scale_0" in fixes:
        noised_bbox = inverse_sigmoid(input_query_bbox)  # fix: logits at scale 0 too
    elif bug != "boxes_only_when_noised":  # BUG (boxes_only_when_noised): unassigned at scale 0: UnboundLocalError
        noised_bbox = input_query_bbox

    if bug == "weight_lookup":
        input_query_class = class_embed.weight[
            input_query_class
        ]  # BUG: bypasses padding_idx: the padding row gets gradient
    elif bug == "autocast_index_put":
        # BUG: the class queries go through a matmul (bfloat16 under autocast) into a buffer of the weight's
        # dtype with index_put: fine in float32, "Index put requires the source and destination dtypes match" under autocast
        rows = class_embed(input_query_class)
        out = torch.zeros_like(rows)
        eye = torch.eye(rows.shape[-1], dtype=rows.dtype, device=rows.device)
        out[torch.ones(rows.shape[:-1], dtype=torch.bool, device=rows.device)] = (rows @ eye).reshape(
            -1, rows.shape[-1]
        )
        input_query_class = out
    else:
        input_query_class = class_embed(input_query_class)

    tgt_size = num_dn + num_queries
    attn_mask = torch.full([tgt_size, tgt_size], False, dtype=torch.bool, device=device)
    attn_mask[num_dn:, :num_dn] = True
    for i in range(num_group):
        start, end = max_gt_num * 2 * i, max_gt_num * 2 * (i + 1)
        if bug == "group_width_off_by_one":
            end += 1  # BUG: off by one: each group's rows see the first row of the next group
        attn_mask[start:end, :start] = True
        attn_mask[start:end, end:num_dn] = True

    dn_meta = {"dn_positive_idx": dn_positive_idx, "dn_num_group": num_group, "dn_num_split": [num_dn, num_queries]}
    return input_query_class, noised_bbox, attn_mask, dn_meta


# --- wrapper bugs: one corrupted output each ----------------------------------------------------


def _meta(outputs, **changes):
    return (*outputs[:3], {**outputs[3], **changes})


@_wraps_reference
def group_count_not_floored(outputs, call):
    """dn_num_group reported as num_denoising // max_gt, without the floor at 1."""
    if outputs[0] is None:
        return outputs
    max_gt = max(len(t["labels"]) for t in call["targets"])
    return _meta(outputs, dn_num_group=call["num_denoising"] // max_gt)  # BUG: 0 when max_gt > num_denoising


@_wraps_reference
def float_mask(outputs, call):
    """The attention mask returned as float (0/1), not bool."""
    if outputs[0] is None:
        return outputs
    return (outputs[0], outputs[1], outputs[2].float(), outputs[3])  # BUG: float mask


@_wraps_reference
def empty_group_convention(outputs, call):
    """lightly-train after PR #446: zero-width outputs for an all-empty batch (a convention,
    and DDP-safe: class_embed is still called)."""
    if outputs[0] is not None or call["num_denoising"] <= 0:
        return outputs
    bs, q, embed = len(call["targets"]), call["num_queries"], call["class_embed"]
    device = call["targets"][0]["labels"].device
    return (
        embed(torch.zeros(bs, 0, dtype=torch.int64, device=device)),
        torch.zeros(bs, 0, 4, dtype=_box_dtype(call["targets"]), device=device),
        torch.zeros(q, q, dtype=torch.bool, device=device),
        {
            "dn_positive_idx": tuple(torch.zeros(0, dtype=torch.int64, device=device) for _ in range(bs)),
            "dn_num_group": 1,
            "dn_num_split": [0, q],
        },
    )


def _empty_batch(call) -> bool:
    return call["num_denoising"] > 0 and max((len(t["labels"]) for t in call["targets"]), default=0) == 0


def _dummy(call):
    from dnspec.contract.conventions import dummy_group

    return dummy_group(
        call["targets"],
        call["num_classes"],
        call["num_queries"],
        call["class_embed"],
        logit_space=call["box_noise_scale"] > 0,
    )


@_wraps_reference
def dummy_group_convention(outputs, call):
    """RT-DETRv2 after PR #684: a dummy group (one masked padding pair per image) for an
    all-empty batch (a convention, not a bug)."""
    return _dummy(call) if _empty_batch(call) else outputs


@_wraps_reference
def meta_only_convention(outputs, call):
    """D-FINE: (None, None, None, dn_meta) with no groups for an all-empty batch (a convention)."""
    if not _empty_batch(call):
        return outputs
    return None, None, None, {"dn_positive_idx": None, "dn_num_group": 0, "dn_num_split": [0, call["num_queries"]]}


@_wraps_reference
def dummy_visible_to_object_queries(outputs, call):
    """The dummy group, but the object queries may attend to the dummy pair."""
    if not _empty_batch(call):
        return outputs
    query_class, boxes, mask, meta = _dummy(call)
    mask = mask.clone()
    mask[2:, :2] = False  # BUG: the object queries see the dummy rows
    return query_class, boxes, mask, meta


@_wraps_reference
def dummy_row_listed_as_positive(outputs, call):
    """The dummy group, but each image's dummy positive row is listed in dn_positive_idx."""
    if not _empty_batch(call):
        return outputs
    query_class, boxes, mask, meta = _dummy(call)
    # BUG: the dummy pair is padding, never a positive
    return query_class, boxes, mask, {**meta, "dn_positive_idx": tuple(torch.tensor([0]) for _ in call["targets"])}


@_wraps_reference
def dummy_group_out_of_graph(outputs, call):
    """A consistent dummy group, but its class queries are a detached copy of the padding
    row: the shape of RT-DETRv2's fix without its point (class_embed stays out of the graph)."""
    if not _empty_batch(call):
        return outputs
    query_class, boxes, mask, meta = _dummy(call)
    return query_class.detach(), boxes, mask, meta  # BUG: DDP still sees an unused parameter


@_wraps_reference
def meta_only_wrong_split(outputs, call):
    """Meta only, but dn_num_split still counts the two rows of a dummy pair."""
    if not _empty_batch(call):
        return outputs
    # BUG: no denoising rows are returned, yet the split says 2
    return None, None, None, {"dn_positive_idx": None, "dn_num_group": 0, "dn_num_split": [2, call["num_queries"]]}


@_wraps_reference
def detached_class_queries(outputs, call):
    """``class_embed(labels).detach()``: "no need to backprop through noise"."""
    if outputs[0] is None:
        return outputs
    return (outputs[0].detach(), *outputs[1:])  # BUG: the denoising label embedding never trains


@_wraps_reference
def grad_under_no_grad(outputs, call):
    """Re-enables autograd for its class-embedding lookup, even under torch.no_grad."""
    if outputs[0] is None:
        return outputs
    labels = recover_labels(outputs[0], call["class_embed"].weight.detach())[0]
    with torch.enable_grad():  # BUG: an inference call builds a graph (and keeps the embedding alive)
        query_class = call["class_embed"](labels)
    return (query_class, *outputs[1:])


@_wraps_reference
def split_off_by_one(outputs, call):
    """dn_num_split off by one: [N - 1, Q + 1]."""
    if outputs[0] is None:
        return outputs
    n, q = outputs[3]["dn_num_split"]
    return _meta(outputs, dn_num_split=[n - 1, q + 1])  # BUG: off by one (the sum is still right)


@_wraps_reference
def groups_see_each_other(outputs, call):
    """The dn groups are not masked from each other."""
    if outputs[0] is None:
        return outputs
    n = outputs[3]["dn_num_split"][0]
    mask = outputs[2].clone()
    mask[:n, :n] = False  # BUG: every dn row sees every group
    return (outputs[0], outputs[1], mask, outputs[3])


@_wraps_reference
def object_queries_see_dn(outputs, call):
    """The object queries may attend to the dn rows (a ground-truth leak into matching)."""
    if outputs[0] is None:
        return outputs
    n = outputs[3]["dn_num_split"][0]
    mask = outputs[2].clone()
    mask[n:, :n] = False  # BUG: block [N:, :N] left open
    return (outputs[0], outputs[1], mask, outputs[3])


@_wraps_reference
def positives_include_negatives(outputs, call):
    """dn_positive_idx lists every real row (positive and negative) of each image."""
    if outputs[0] is None:
        return outputs
    max_gt = max(len(t["labels"]) for t in call["targets"])
    rows = torch.arange(outputs[3]["dn_num_split"][0])
    # BUG: real rows (slot < n_i) without excluding the negative half of each group
    idx = tuple(rows[rows % max_gt < len(t["labels"])] for t in call["targets"])
    return _meta(outputs, dn_positive_idx=idx)


@_wraps_reference
def positive_idx_flat_list(outputs, call):
    """dn_positive_idx as one flat list of ints for the batch, not one tensor per image."""
    if outputs[0] is None:
        return outputs
    return _meta(outputs, dn_positive_idx=[int(r) for idx in outputs[3]["dn_positive_idx"] for r in idx])  # BUG


@_wraps_reference
def positive_idx_int32(outputs, call):
    """dn_positive_idx tensors in int32."""
    if outputs[0] is None:
        return outputs
    return _meta(outputs, dn_positive_idx=tuple(i.to(torch.int32) for i in outputs[3]["dn_positive_idx"]))  # BUG: int32


@_wraps_reference
def boxes_always_float32(outputs, call):
    """The boxes cast to float32 whatever the input dtype, as RT-DETR's float32 box
    buffer gives them (not a bug: the contract accepts it)."""
    if outputs[0] is None:
        return outputs
    return (outputs[0], outputs[1].float(), *outputs[2:])


@_wraps_reference
def boxes_in_half_precision(outputs, call):
    """The boxes returned in float16, whatever the input dtype."""
    if outputs[0] is None:
        return outputs
    return (outputs[0], outputs[1].half(), *outputs[2:])  # BUG: float32 (and bfloat16) inputs lose box precision


def float32_box_buffer(
    targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0
):
    """RT-DETR's published function as it treats dtypes: its box buffer is
    ``torch.zeros([bs, max_gt, 4])``, float32 whatever the inputs' dtype, so the boxes are
    copied into float32, noised with float32 draws and returned in float32 (the reference
    on float32 copies of the boxes does exactly that); no ``noise=`` keyword, as upstream."""
    targets32 = [{**t, "boxes": t["boxes"].to(torch.float32)} for t in targets]
    return reference(
        targets32,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        validate=False,
    )  # upstream validates nothing (a bfloat16 box may round past the border)


def label_noise_defaults_when_zero(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """``label_noise_ratio or 0.5``: a ratio of 0 is taken for 'unset' and becomes 0.5."""
    label_noise_ratio = label_noise_ratio or 0.5  # BUG: 0 is falsy: label noise at ratio 0
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


def clamps_targets_in_place(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Caps box sides at 0.5 with an in-place clamp_ on the caller's tensors (the capped
    boxes stay valid: the corners move toward the centre)."""
    for t in targets:
        t["boxes"][:, 2:].clamp_(max=0.5)  # BUG: in place, on the caller's boxes (meant for a copy)
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


def time_seeded_noise(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Draws its noise from a generator seeded by the clock, not torch's global RNG."""
    generator = torch.Generator().manual_seed(time.perf_counter_ns())  # BUG: torch.manual_seed has no effect
    return reference(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        noise=noise,
        generator=generator,
    )


def redraws_signs(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Takes an injected draw but redraws its box signs."""
    if noise is not None and noise.box_sign is not None:
        # BUG: the injected signs are ignored
        sign = (
            torch.randint(0, 2, noise.box_sign.shape, device=noise.box_sign.device).to(noise.box_sign.dtype) * 2.0 - 1.0
        )
        noise = replace(noise, box_sign=sign)
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


_CALLS = itertools.count()


@_wraps_reference
def call_counter_leaks(outputs, call):
    """A module-level call counter leaks into the output: every second call leaves the
    object queries' view of the dn rows open."""
    odd = next(_CALLS) % 2 == 1
    if outputs[0] is None or not odd:
        return outputs
    n = outputs[3]["dn_num_split"][0]
    mask = outputs[2].clone()
    mask[n:, :n] = False  # BUG: depends on how many calls came before
    return (outputs[0], outputs[1], mask, outputs[3])


def always_raises(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Raises on every call."""
    raise RuntimeError("selftest: this implementation always raises")  # BUG


def hangs(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Never returns in time."""
    time.sleep(60)  # BUG: a hang (the suite stops it with SIGALRM under time_limit_s)
    return NO_OUTPUT


def skips_validation(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    noise=None,
):
    """Upstream's behaviour on bad input: no validation, so some bad calls return plausible output."""
    return reference(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        noise=noise,
        validate=False,
    )  # BUG: validate=False


# --- the registry ---------------------------------------------------------------------------------

FIXES = frozenset({"logit_at_scale_0", "reorder_corners", "other_class"})

DIFF = {"noiseless_matches_reference", "injected_noise_matches_reference"}
ADVISORIES = {"box_output_space", "no_collapsed_boxes", "label_flip_rate_is_ratio"}  # the ones fixes_advisories holds


def _impl(name, fn, *, accepts_noise=True, **kwargs) -> Implementation:
    return Implementation(
        name=f"selftest-{name}", fn=fn, accepts_noise=accepts_noise, description=(fn.__doc__ or "").strip(), **kwargs
    )


CONTROLS: dict[str, Implementation] = {
    # the reference itself, its copy with no hook set, and the copy with all three advisories fixed
    "reference": _impl("reference", reference),
    "copy_control": _impl("copy-control", _copy()),
    "fixed_control": _impl("fixed-control", _copy(fixes=FIXES), fixes_advisories=True),
    # boxes in float32 whatever the inputs' dtype, as RT-DETR's buffer is
    "float32_boxes_control": _impl("float32-boxes-control", boxes_always_float32),
    # the published function's dtype behaviour, a black box (no noise= keyword)
    "published_float32_buffer": _impl("published-float32-buffer", float32_box_buffer, accepts_noise=False),
    # the empty-batch conventions of real forks (dnspec.contract.conventions)
    "dummy_group_convention": _impl("dummy-group-convention", dummy_group_convention),
    "meta_only_convention": _impl("meta-only-convention", meta_only_convention),
    "empty_group_convention": _impl("empty-group-convention", empty_group_convention),
}

BROKEN: dict[str, tuple[Implementation, set[str]]] = {
    # structure
    "group_count_not_floored": (_impl("group-count-not-floored", group_count_not_floored), {"structure", *DIFF}),
    "float_mask": (_impl("float-mask", float_mask), {"structure"}),
    "split_off_by_one": (_impl("split-off-by-one", split_off_by_one), {"structure", *DIFF}),
    # attention mask
    "groups_see_each_other": (_impl("groups-see-each-other", groups_see_each_other), {"attention_mask", *DIFF}),
    "object_queries_see_dn": (_impl("object-queries-see-dn", object_queries_see_dn), {"attention_mask", *DIFF}),
    "group_width_off_by_one": (
        _impl("group-width-off-by-one", _copy("group_width_off_by_one")),
        {"attention_mask", *DIFF},
    ),
    # positive indices
    "positives_include_negatives": (
        _impl("positives-include-negatives", positives_include_negatives),
        {"positive_indices", *DIFF},
    ),
    "positive_idx_flat_list": (_impl("positive-idx-flat-list", positive_idx_flat_list), {"positive_indices", *DIFF}),
    "positive_idx_int32": (_impl("positive-idx-int32", positive_idx_int32), {"positive_indices"}),
    # class queries and label statistics
    "label_noise_on_padding": (
        _impl("label-noise-on-padding", _copy("label_noise_on_padding")),
        {"class_queries", "injected_noise_matches_reference"},
    ),
    "label_shift": (
        _impl("label-shift", _copy("label_shift")),
        {"label_flip_rate", "replacement_uniform", "injected_noise_matches_reference"},
    ),
    "label_noise_defaults_when_zero": (
        _impl("label-noise-defaults-when-zero", label_noise_defaults_when_zero),
        {"class_queries", "noiseless_matches_reference"},
    ),
    "flip_prob_ratio": (_impl("flip-prob-ratio", _draws_noise("flip_prob_ratio")), {"label_flip_rate"}),
    "replacement_excludes_last": (
        _impl("replacement-excludes-last", _draws_noise("replacement_excludes_last")),
        {"replacement_uniform"},
    ),
    # boxes and box statistics
    "negatives_positive_range": (
        _impl("negatives-positive-range", _copy("negatives_positive_range")),
        {"boxes", "box_magnitudes", "injected_noise_matches_reference"},
    ),
    "no_clip": (_impl("no-clip", _copy("no_clip")), {"boxes", "injected_noise_matches_reference"}),
    "padding_boxes_nonzero": (_impl("padding-boxes-nonzero", _copy("padding_boxes_nonzero")), {"boxes", *DIFF}),
    "scale_twice": (
        _impl("scale-twice", _copy("scale_twice")),
        {"boxes", "box_magnitudes", "injected_noise_matches_reference"},
    ),
    "magnitudes_0_9": (_impl("magnitudes-0-9", _draws_noise("magnitudes_0_9")), {"box_magnitudes"}),
    "signs_biased": (_impl("signs-biased", _draws_noise("signs_biased")), {"box_magnitudes"}),
    "same_noise_all_coords": (
        _impl("same-noise-all-coords", _draws_noise("same_noise_all_coords")),
        {"noise_independence"},
    ),
    "same_noise_every_group": (
        _impl("same-noise-every-group", _draws_noise("same_noise_every_group")),
        {"noise_independence"},
    ),
    # inputs, determinism, differential
    "clamps_targets_in_place": (
        _impl("clamps-targets-in-place", clamps_targets_in_place),
        {"inputs_untouched", "boxes", *DIFF},
    ),
    "time_seeded_noise": (_impl("time-seeded-noise", time_seeded_noise), {"determinism"}),
    "halves_swapped": (
        _impl("halves-swapped", _copy("halves_swapped")),
        {"positive_indices", "boxes", "box_magnitudes", *DIFF},
    ),
    "redraws_signs": (_impl("redraws-signs", redraws_signs), {"injected_noise_matches_reference"}),
    # device and dtype agreement
    "call_counter_leaks": (_impl("call-counter-leaks", call_counter_leaks), {"device_agreement[cpu]", "determinism"}),
    "mutates_injected_draw": (
        _impl("mutates-injected-draw", _copy("mutates_injected_draw")),
        {"device_agreement[cpu]", "injected_noise_matches_reference"},
    ),
    "boxes_in_half_precision": (
        _impl("boxes-in-half-precision", boxes_in_half_precision),
        {"structure", "dtype_agreement[float32]", "dtype_agreement[bfloat16]"},
    ),
    # advisories: upstream's quirks under strict; a builder claiming the fixes must hold them without strict
    "upstream_quirks": (_impl("upstream-quirks", reference), {*ADVISORIES, "empty_batch_in_graph"}),
    "claims_fixes_but_does_not": (
        _impl("claims-fixes-but-does-not", reference, fixes_advisories=True),
        {*ADVISORIES, "boxes", "noiseless_matches_reference", "label_flip_rate"},
    ),
    "fixed_but_box_space_at_scale_0": (
        _impl("fixed-but-box-space-at-scale-0", _copy(fixes=FIXES - {"logit_at_scale_0"}), fixes_advisories=True),
        {"box_output_space", "boxes", "noiseless_matches_reference"},
    ),
    "fixed_but_collapses": (
        _impl("fixed-but-collapses", _copy(fixes=FIXES - {"reorder_corners"}), fixes_advisories=True),
        {"no_collapsed_boxes", "boxes"},
    ),
    "fixed_but_flips_to_any_class": (
        _impl("fixed-but-flips-to-any-class", _copy(fixes=FIXES - {"other_class"}), fixes_advisories=True),
        {"label_flip_rate_is_ratio", "label_flip_rate"},
    ),
    "skips_validation": (_impl("skips-validation", skips_validation), {"bad_input"}),
    # training-loop bugs: forward values exactly right
    "detached_class_queries": (_impl("detached-class-queries", detached_class_queries), {"class_embed_gradient"}),
    "weight_lookup": (_impl("weight-lookup", _copy("weight_lookup")), {"padding_row_gradient"}),
    "grad_under_no_grad": (_impl("grad-under-no-grad", grad_under_no_grad), {"no_grad_outputs"}),
    "autocast_index_put": (_impl("autocast-index-put", _copy("autocast_index_put")), {"autocast_outputs"}),
    # empty-batch conventions broken (test_divergences.py checks each is caught by its own check)
    "dummy_visible_to_object_queries": (
        _impl("dummy-visible-to-object-queries", dummy_visible_to_object_queries),
        {"structure"},
    ),
    "dummy_row_listed_as_positive": (
        _impl("dummy-row-listed-as-positive", dummy_row_listed_as_positive),
        {"structure"},
    ),
    "meta_only_wrong_split": (_impl("meta-only-wrong-split", meta_only_wrong_split), {"structure"}),
    "dummy_group_out_of_graph": (_impl("dummy-group-out-of-graph", dummy_group_out_of_graph), {"empty_batch_in_graph"}),
    # bugs that live in one regime (properties/selftest/test_divergences.py checks they stay there)
    "boxes_only_when_noised": (
        _impl("boxes-only-when-noised", _copy("boxes_only_when_noised")),
        {"structure", "boxes", "noiseless_matches_reference"},
    ),
    "crossed_width_flipped": (
        _impl("crossed-width-flipped", _copy("crossed_width_flipped")),
        {"boxes", "injected_noise_matches_reference"},
    ),
    "off_only_at_zero": (_impl("off-only-at-zero", _copy("off_only_at_zero")), {"structure"}),
    # an implementation that raises, and one that hangs: 'fail' with a clear message, not a crash
    "always_raises": (
        _impl("always-raises", always_raises),
        {"structure", "determinism", "label_flip_rate", "box_output_space"},
    ),
    "hangs": (_impl("hangs", hangs), {"structure", "boxes"}),
}

# Bugs no property catches yet (each is a gap in the checks, reported to the lead): the
# properties named SHOULD catch them. The selftest runs them as strict xfails, so a check
# that learns to catch one turns its test into an XPASS failure: move it into BROKEN then.
# Bugs the checks once missed, each closed by a check added for it (see the selftest's
# report in the commit history): now ordinary expectations.
BROKEN.update(
    {
        "negative_reuses_positive_noise": (
            _impl("negative-reuses-positive-noise", _draws_noise("negative_reuses_positive_noise")),
            {"noise_independence"},
        ),
        "corner_signs_mirrored": (
            _impl("corner-signs-mirrored", _draws_noise("corner_signs_mirrored")),
            {"noise_independence"},
        ),
        "signs_biased_per_coordinate": (
            _impl("signs-biased-per-coordinate", _draws_noise("signs_biased_per_coordinate")),
            {"box_magnitudes"},
        ),
        "label_noise_same_every_group": (
            _impl("label-noise-same-every-group", _draws_noise("label_noise_same_every_group")),
            {"label_noise_independence"},
        ),
        "label_noise_positive_rows_only": (
            _impl("label-noise-positive-rows-only", _draws_noise("label_noise_positive_rows_only")),
            {"label_flip_rate"},
        ),
    }
)

# process_state and fresh_noise: their variants live with the stopping ones (stopping_variants.py)
BROKEN.update(STATE_AND_NOISE)
# call_history: its variants live with the other history-dependent builders (history_variants.py)
BROKEN.update(CALL_HISTORY)

# Bugs no property catches yet, as strict xfails (closing a gap makes its test fail): none today.
KNOWN_MISSES: dict[str, tuple[Implementation, set[str], str]] = {}
