"""A fork whose decoder calls scaled_dot_product_attention: its mask is [bs, 1, T, T] with
True where a query MAY attend, and its boxes are logits at every box_noise_scale
(inverse_sigmoid moved out of the noise branch)."""

from ._shared import group_of_rows, inverse_sigmoid, noised_groups


def get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed,
                                             num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    if num_denoising <= 0:
        return None, None, None, None
    groups = noised_groups(targets, num_classes, num_denoising, label_noise_ratio, box_noise_scale)
    if groups is None:
        return None, None, None, None
    labels, boxes, positive_idx, num_group, num_dn = groups
    max_gt_num = num_dn // (2 * num_group)
    group = group_of_rows(num_dn, num_queries, max_gt_num, boxes.device)
    key_is_dn = group >= 0
    may_attend = ~key_is_dn[None, :] | (group[:, None] == group[None, :])
    attn_mask = may_attend[None, None].expand(len(targets), 1, -1, -1)
    dn_meta = {"dn_positive_idx": positive_idx, "dn_num_group": num_group, "dn_num_split": [num_dn, num_queries]}
    return class_embed(labels), inverse_sigmoid(boxes), attn_mask, dn_meta
