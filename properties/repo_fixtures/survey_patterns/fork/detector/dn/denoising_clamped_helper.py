"""Survey pattern "a verbatim builder changed by its helper" (SSP-RT-DETR): the builder is
RT-DETR's, but the corner conversion it imports clamps widths and corners away from 0 and 1,
so padding rows are no longer the zero box and ground-truth corners on the border move in
by 1e-4. The right verdict: diverges, in the padding rows and the border positives.
Written for dnspec's tests."""

import torch

from .geometry_clamped import logit, to_center, to_corners


def get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed,
                                             num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    if num_denoising <= 0:
        return None, None, None, None
    counts = [len(t["labels"]) for t in targets]
    device = targets[0]["labels"].device
    most = max(counts)
    if most == 0:
        return None, None, None, None
    width = next((t["boxes"].shape[-1] for t in targets if len(t["boxes"])), 4)
    groups = max(1, num_denoising // most)
    bs = len(counts)

    labels = torch.full([bs, most], num_classes, dtype=torch.int32, device=device)
    boxes = torch.zeros([bs, most, width], device=device)
    real = torch.zeros([bs, most], dtype=torch.bool, device=device)
    for b, n in enumerate(counts):
        if n:
            labels[b, :n] = targets[b]["labels"]
            boxes[b, :n] = targets[b]["boxes"]
            real[b, :n] = True
    labels = labels.repeat(1, 2 * groups)
    boxes = boxes.repeat(1, 2 * groups, 1)
    real = real.repeat(1, 2 * groups)

    negative = torch.zeros([bs, 2 * most, 1], device=device)
    negative[:, most:] = 1
    negative = negative.repeat(1, groups, 1)
    positive = (1 - negative).squeeze(-1) * real
    positive_idx = torch.split(torch.nonzero(positive)[:, 1], [n * groups for n in counts])
    total = 2 * most * groups

    if label_noise_ratio > 0:
        flip = torch.rand_like(labels, dtype=torch.float) < label_noise_ratio * 0.5
        other = torch.randint_like(flip, 0, num_classes, dtype=labels.dtype)
        labels = torch.where(flip & real, other, labels)

    if box_noise_scale > 0:
        xywh = boxes[..., :4]
        corners = to_corners(xywh)
        half = torch.cat([xywh[..., 2:], xywh[..., 2:]], dim=-1) * 0.5 * box_noise_scale
        sign = torch.randint_like(xywh, 0, 2) * 2.0 - 1.0
        amount = torch.rand_like(xywh)
        amount = (amount + 1.0) * negative + amount * (1 - negative)
        corners = (corners + sign * amount * half).clamp(0.0, 1.0)
        boxes = torch.cat([to_center(corners), boxes[..., 4:]], dim=-1)
        boxes = logit(boxes)

    embedded = class_embed(labels)

    size = total + num_queries
    mask = torch.zeros([size, size], dtype=torch.bool, device=device)
    mask[total:, :total] = True
    step = 2 * most
    for g in range(groups):
        rows = slice(g * step, (g + 1) * step)
        mask[rows, (g + 1) * step : total] = True
        mask[rows, : g * step] = True

    meta = {"dn_positive_idx": positive_idx, "dn_num_group": groups, "dn_num_split": [total, num_queries]}
    return embedded, boxes, mask, meta
