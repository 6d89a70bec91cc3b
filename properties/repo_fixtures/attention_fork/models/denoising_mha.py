"""A fork whose decoder calls nn.MultiheadAttention with a per-head additive mask:
[bs * num_heads, T, T], 0 where a query may attend and -inf where it may not. Its extra
parameter num_heads has a default."""

import torch

from ._shared import group_of_rows, inverse_sigmoid, noised_groups


def get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed,
                                             num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0,
                                             num_heads=8):
    if num_denoising <= 0:
        return None, None, None, None
    groups = noised_groups(targets, num_classes, num_denoising, label_noise_ratio, box_noise_scale)
    if groups is None:
        return None, None, None, None
    labels, boxes, positive_idx, num_group, num_dn = groups
    if box_noise_scale > 0:
        boxes = inverse_sigmoid(boxes)
    max_gt_num = num_dn // (2 * num_group)
    group = group_of_rows(num_dn, num_queries, max_gt_num, boxes.device)
    blocked = (group >= 0)[None, :] & (group[:, None] != group[None, :])
    additive = torch.zeros(blocked.shape, device=boxes.device).masked_fill(blocked, float("-inf"))
    attn_mask = additive.repeat(len(targets) * num_heads, 1, 1)
    dn_meta = {"dn_positive_idx": positive_idx, "dn_num_group": num_group, "dn_num_split": [num_dn, num_queries]}
    return class_embed(labels), boxes, attn_mask, dn_meta
