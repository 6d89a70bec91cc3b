"""The reference CDN query builder: RT-DETR's ``get_contrastive_denoising_training_group``.

Written as upstream writes it (loops, ``tile``, in-place clip) so that a reviewer can
hold it next to RT-DETR's code line by line; with the same ``torch.manual_seed`` its four
outputs are bit-identical to transformers' port (``properties/test_reference.py``).

Conventions (the dnspec contract; adapters map peers onto it):
  targets         list, one dict per image: ``labels`` int [n], ``boxes`` float [n, 4]
                  normalized cxcywh
  class_embed     ``nn.Embedding(num_classes + 1, D, padding_idx=num_classes)``
  returns         ``(input_query_class [bs, N, D], input_query_bbox [bs, N, 4],
                  attn_mask bool [N+Q, N+Q] (True = may not attend), dn_meta)``, or
                  ``(None, None, None, None)`` when num_denoising <= 0 or no image has a box.

The randomness lives in :func:`dnspec.contract.noise.draw_noise`; :func:`build_from_noise` is the
pure transform. :func:`get_contrastive_denoising_training_group` composes the two and
accepts an injected ``noise=`` draw, which is how implementations and devices are
compared exactly.

Two upstream quirks are kept on purpose (they are reported as advisories, not fixed):
the boxes come back in box space when box_noise_scale == 0 and in logit space otherwise,
and negatives whose corners cross collapse to a width or height of ~1e-5.
The one deliberate difference: the box buffer takes the dtype of the input boxes
(upstream uses the default dtype, float32), so float64 and half inputs stay in their dtype.
"""

from __future__ import annotations

import torch

from dnspec.contract.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid
from dnspec.contract.noise import NoiseDraw, draw_noise
from dnspec.contract.validation import validate_cdn_inputs

NO_OUTPUT = (None, None, None, None)


def _box_dtype(targets) -> torch.dtype:
    for t in targets:
        return t["boxes"].dtype
    return torch.get_default_dtype()


def build_from_noise(
    targets,
    num_classes: int,
    num_queries: int,
    class_embed,
    num_denoising: int,
    label_noise_ratio: float,
    box_noise_scale: float,
    noise: NoiseDraw,
    crossed_keep_side: bool = False,
):
    """Apply one noise draw to a batch: the deterministic part of the CDN builder.

    ``crossed_keep_side`` (a lineage switch, :mod:`dnspec.contract.lineages`): a noised box
    whose corners crossed keeps its side's magnitude |w| (|h|) instead of RT-DETR's
    collapse to ~1e-5: a negative side of the cxcywh box is negated before the logit,
    as D-FINE and DEIM document."""
    if num_denoising <= 0:
        return NO_OUTPUT
    num_gts = [len(t["labels"]) for t in targets]
    max_gt_num = max(num_gts, default=0)
    if max_gt_num == 0:
        return NO_OUTPUT
    device = targets[0]["labels"].device

    num_group = num_denoising // max_gt_num
    num_group = 1 if num_group == 0 else num_group
    bs = len(num_gts)

    input_query_class = torch.full([bs, max_gt_num], num_classes, dtype=torch.int32, device=device)
    input_query_bbox = torch.zeros([bs, max_gt_num, 4], dtype=_box_dtype(targets), device=device)
    pad_gt_mask = torch.zeros([bs, max_gt_num], dtype=torch.bool, device=device)
    for i in range(bs):
        num_gt = num_gts[i]
        if num_gt > 0:
            input_query_class[i, :num_gt] = targets[i]["labels"]
            input_query_bbox[i, :num_gt] = targets[i]["boxes"]
            pad_gt_mask[i, :num_gt] = 1

    # each group has positive and negative queries: [pos m | neg m] repeated num_group times
    input_query_class = input_query_class.tile([1, 2 * num_group])
    input_query_bbox = input_query_bbox.tile([1, 2 * num_group, 1])
    pad_gt_mask = pad_gt_mask.tile([1, 2 * num_group])
    negative_gt_mask = torch.zeros([bs, max_gt_num * 2, 1], dtype=input_query_bbox.dtype, device=device)
    negative_gt_mask[:, max_gt_num:] = 1
    negative_gt_mask = negative_gt_mask.tile([1, num_group, 1])
    positive_gt_mask = 1 - negative_gt_mask
    positive_gt_mask = positive_gt_mask.squeeze(-1) * pad_gt_mask
    dn_positive_idx = torch.nonzero(positive_gt_mask)[:, 1]
    dn_positive_idx = torch.split(dn_positive_idx, [n * num_group for n in num_gts])
    num_dn = int(max_gt_num * 2 * num_group)

    if label_noise_ratio > 0:
        _require(noise.label_flip is not None and noise.replacement_label is not None, "label")
        new_label = noise.replacement_label.to(input_query_class.dtype)
        input_query_class = torch.where(noise.label_flip & pad_gt_mask, new_label, input_query_class)

    if box_noise_scale > 0:
        _require(noise.box_sign is not None and noise.box_magnitude is not None, "box")
        known_bbox = box_cxcywh_to_xyxy(input_query_bbox)
        diff = torch.tile(input_query_bbox[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        rand_sign = noise.box_sign.to(input_query_bbox.dtype)
        rand_part = noise.box_magnitude.to(input_query_bbox.dtype)
        rand_part = (rand_part + 1.0) * negative_gt_mask + rand_part * (1 - negative_gt_mask)
        rand_part = rand_part * rand_sign
        known_bbox += rand_part * diff
        known_bbox.clip_(min=0.0, max=1.0)
        input_query_bbox = box_xyxy_to_cxcywh(known_bbox)
        if crossed_keep_side:  # only a side can be negative: the centre of clipped corners is in [0, 1]
            input_query_bbox = torch.where(input_query_bbox < 0, -input_query_bbox, input_query_bbox)
        input_query_bbox = inverse_sigmoid(input_query_bbox)

    input_query_class = class_embed(input_query_class)

    tgt_size = num_dn + num_queries
    attn_mask = torch.full([tgt_size, tgt_size], False, dtype=torch.bool, device=device)
    # object queries cannot see the denoising queries
    attn_mask[num_dn:, :num_dn] = True
    # denoising groups cannot see each other
    for i in range(num_group):
        start, end = max_gt_num * 2 * i, max_gt_num * 2 * (i + 1)
        attn_mask[start:end, :start] = True
        attn_mask[start:end, end:num_dn] = True

    dn_meta = {
        "dn_positive_idx": dn_positive_idx,
        "dn_num_group": num_group,
        "dn_num_split": [num_dn, num_queries],
    }
    return input_query_class, input_query_bbox, attn_mask, dn_meta


def _require(present: bool, which: str) -> None:
    if not present:
        raise ValueError(
            f"noise: the injected NoiseDraw has no {which} noise, but the call asks for it "
            f"(draw it with the same label_noise_ratio and box_noise_scale)"
        )


def get_contrastive_denoising_training_group(
    targets,
    num_classes: int,
    num_queries: int,
    class_embed,
    num_denoising: int = 100,
    label_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,
    *,
    noise: NoiseDraw | None = None,
    generator: torch.Generator | None = None,
    validate: bool = True,
    crossed_keep_side: bool = False,
):
    """RT-DETR's CDN builder. Draws from ``generator`` (default: the global RNG, in
    upstream order) unless a ``noise`` draw is injected, then applies it.

    ``validate`` (default True): first check the inputs with
    :func:`dnspec.contract.validation.validate_cdn_inputs`, raising ``CdnInputError`` on a malformed
    call, even one that num_denoising <= 0 would return early from. The check draws no
    random numbers, so valid inputs give upstream's outputs and RNG state either way;
    ``validate=False`` is upstream's behaviour on invalid inputs too (and skips its cost).
    ``crossed_keep_side``: see :func:`build_from_noise` (the D-FINE/DEIM lineage switch)."""
    if validate:
        validate_cdn_inputs(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
        )
    if num_denoising <= 0:
        return NO_OUTPUT
    max_gt_num = max((len(t["labels"]) for t in targets), default=0)
    if max_gt_num == 0:
        return NO_OUTPUT
    if noise is None:
        num_group = max(1, num_denoising // max_gt_num)
        noise = draw_noise(
            len(targets),
            2 * max_gt_num * num_group,
            num_classes,
            label_noise_ratio,
            box_noise_scale,
            device=targets[0]["labels"].device,
            box_dtype=_box_dtype(targets),
            generator=generator,
        )
    return build_from_noise(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        noise,
        crossed_keep_side=crossed_keep_side,
    )
