"""RT-DETR's builder in a fork that imports its own repository's package by absolute name,
as it does when run from the repository root (python tools/train.py)."""

import torch

from src.core import register
from src.zoo.rtdetr.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from src.zoo.rtdetr.utils import inverse_sigmoid


@register
def get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed,
                                             num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    if num_denoising <= 0:
        return None, None, None, None
    num_gts = [len(t["labels"]) for t in targets]
    device = targets[0]["labels"].device
    max_gt_num = max(num_gts)
    if max_gt_num == 0:
        return None, None, None, None

    num_group = max(1, num_denoising // max_gt_num)
    bs = len(num_gts)
    query_class = torch.full([bs, max_gt_num], num_classes, dtype=torch.int32, device=device)
    query_bbox = torch.zeros([bs, max_gt_num, 4], device=device)
    pad_gt_mask = torch.zeros([bs, max_gt_num], dtype=torch.bool, device=device)
    for i, n in enumerate(num_gts):
        if n > 0:
            query_class[i, :n] = targets[i]["labels"]
            query_bbox[i, :n] = targets[i]["boxes"]
            pad_gt_mask[i, :n] = 1

    query_class = query_class.tile([1, 2 * num_group])
    query_bbox = query_bbox.tile([1, 2 * num_group, 1])
    pad_gt_mask = pad_gt_mask.tile([1, 2 * num_group])
    negative = torch.zeros([bs, max_gt_num * 2, 1], device=device)
    negative[:, max_gt_num:] = 1
    negative = negative.tile([1, num_group, 1])
    positive = (1 - negative).squeeze(-1) * pad_gt_mask
    dn_positive_idx = torch.split(torch.nonzero(positive)[:, 1], [n * num_group for n in num_gts])
    num_dn = int(max_gt_num * 2 * num_group)

    if label_noise_ratio > 0:
        flip = torch.rand_like(query_class, dtype=torch.float) < (label_noise_ratio * 0.5)
        new_label = torch.randint_like(flip, 0, num_classes, dtype=query_class.dtype)
        query_class = torch.where(flip & pad_gt_mask, new_label, query_class)

    if box_noise_scale > 0:
        corners = box_cxcywh_to_xyxy(query_bbox)
        half = torch.tile(query_bbox[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        sign = torch.randint_like(query_bbox, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(query_bbox)
        part = (part + 1.0) * negative + part * (1 - negative)
        part *= sign
        corners += part * half
        corners.clip_(min=0.0, max=1.0)
        query_bbox = inverse_sigmoid(box_xyxy_to_cxcywh(corners))

    query_class = class_embed(query_class)

    size = num_dn + num_queries
    attn_mask = torch.full([size, size], False, dtype=torch.bool, device=device)
    attn_mask[num_dn:, :num_dn] = True
    for g in range(num_group):
        start, end = max_gt_num * 2 * g, max_gt_num * 2 * (g + 1)
        attn_mask[start:end, :start] = True
        attn_mask[start:end, end:num_dn] = True

    dn_meta = {"dn_positive_idx": dn_positive_idx, "dn_num_group": num_group, "dn_num_split": [num_dn, num_queries]}
    return query_class, query_bbox, attn_mask, dn_meta
