"""Builders for the lineage and ``--against`` self-test (properties/selftest/test_lineages.py).

Written for dnspec's tests, loop-free (no Python loop over images or groups), from the
D-FINE pattern that properties/repo_fixtures/rtdetr_fork/src/zoo/rtdetr/denoising_dfine.py
follows: the same torch draws in the same order (so the same ``torch.manual_seed`` gives the
same numbers), a crossed negative keeping |w|, meta only for an all-empty batch, and the
box output assigned only when box_noise_scale > 0 (the crash it shares with the fixture).
Each variant changes one thing:

``dfine_loop_free``          the rewrite: bit-compatible with the fixture;
``dfine_loop_free_mask_bug`` object queries may attend to the denoising rows (one new bug);
``dfine_draws_reordered``    box magnitudes drawn before their signs, label noise after the
                             box noise: other numbers, the same distributions;
``dfine_narrow_negatives``   negative magnitudes from [1, 1.5) instead of [1, 2): still
                             inside the box check's bounds, but another distribution;
``deim_pattern``             four Nones for an all-empty batch (DEIM's lineage), the rest
                             as the rewrite.
All are importable as ``properties/selftest/lineage_variants.py:NAME`` specs.
"""

from __future__ import annotations

import torch

from dnspec.contract.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid


def _build(
    targets,
    num_classes,
    num_queries,
    class_embed,
    num_denoising=100,
    label_noise_ratio=0.5,
    box_noise_scale=1.0,
    *,
    mask_bug=False,
    reordered=False,
    negative_span=1.0,
    four_nones=False,
):
    if num_denoising <= 0:
        return None, None, None, None
    device = targets[0]["labels"].device
    counts = torch.tensor([len(t["labels"]) for t in targets], device=device)
    max_gt = int(counts.max()) if len(targets) else 0
    if max_gt == 0 and four_nones:
        return None, None, None, None
    if max_gt == 0:
        return None, None, None, {"dn_positive_idx": None, "dn_num_group": 0, "dn_num_split": [0, num_queries]}
    groups = max(1, num_denoising // max_gt)
    bs, rows = len(targets), 2 * max_gt * groups

    real = torch.arange(max_gt, device=device)[None, :] < counts[:, None]  # [bs, max_gt]
    query_class = torch.full([bs, max_gt], num_classes, dtype=torch.int32, device=device)
    query_class[real] = torch.cat([t["labels"] for t in targets]).to(torch.int32)
    query_bbox = torch.zeros([bs, max_gt, 4], device=device)  # float32, as the fixture's buffer
    query_bbox[real] = torch.cat([t["boxes"] for t in targets]).to(query_bbox.dtype)
    query_class = query_class.repeat(1, 2 * groups)
    query_bbox = query_bbox.repeat(1, 2 * groups, 1)
    real = real.repeat(1, 2 * groups)
    is_negative = (torch.arange(rows, device=device) % (2 * max_gt)) >= max_gt  # [rows]
    positives = torch.nonzero(real & ~is_negative[None, :])[:, 1]
    dn_positive_idx = torch.split(positives, (counts * groups).tolist())

    def label_noise(query_class):
        flip = torch.rand_like(query_class, dtype=torch.float) < (label_noise_ratio * 0.5)
        new_label = torch.randint_like(flip, 0, num_classes, dtype=query_class.dtype)
        return torch.where(flip & real, new_label, query_class)

    if label_noise_ratio > 0 and not reordered:
        query_class = label_noise(query_class)
    if box_noise_scale > 0:
        corners = box_cxcywh_to_xyxy(query_bbox)
        half = torch.tile(query_bbox[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        if reordered:
            part = torch.rand_like(query_bbox)
            sign = torch.randint_like(query_bbox, 0, 2) * 2.0 - 1.0
        else:
            sign = torch.randint_like(query_bbox, 0, 2) * 2.0 - 1.0
            part = torch.rand_like(query_bbox)
        part = torch.where(is_negative[None, :, None], part * negative_span + 1.0, part) * sign
        corners = (corners + part * half).clip(min=0.0, max=1.0)
        query_bbox = box_xyxy_to_cxcywh(corners)
        query_bbox = torch.where(query_bbox < 0, -query_bbox, query_bbox)  # a crossed side keeps |w|
        query_bbox_unact = inverse_sigmoid(query_bbox)
    if label_noise_ratio > 0 and reordered:
        query_class = label_noise(query_class)
    query_class = class_embed(query_class)

    group = torch.arange(rows, device=device) // (2 * max_gt)
    attn_mask = torch.zeros([rows + num_queries] * 2, dtype=torch.bool, device=device)
    attn_mask[:rows, :rows] = group[:, None] != group[None, :]
    attn_mask[rows:, :rows] = not mask_bug  # BUG when mask_bug: the object queries see the denoising rows
    dn_meta = {"dn_positive_idx": dn_positive_idx, "dn_num_group": groups, "dn_num_split": [rows, num_queries]}
    return query_class, query_bbox_unact, attn_mask, dn_meta  # unbound at box_noise_scale == 0, as the fixture's


def dfine_loop_free(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5,
                    box_noise_scale=1.0):  # fmt: skip
    return _build(targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale)


def dfine_loop_free_mask_bug(targets, num_classes, num_queries, class_embed, num_denoising=100,
                             label_noise_ratio=0.5, box_noise_scale=1.0):  # fmt: skip
    return _build(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, mask_bug=True
    )


def dfine_draws_reordered(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5,
                          box_noise_scale=1.0):  # fmt: skip
    return _build(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        reordered=True,
    )


def dfine_narrow_negatives(targets, num_classes, num_queries, class_embed, num_denoising=100,
                           label_noise_ratio=0.5, box_noise_scale=1.0):  # fmt: skip
    return _build(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        negative_span=0.5,
    )


def deim_pattern(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5,
                 box_noise_scale=1.0):  # fmt: skip
    return _build(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        four_nones=True,
    )
