"""A broken implementation: the object queries may attend to the denoising rows (the
mask block ``attn_mask[N:, :N]`` is left False), a ground-truth leak into matching."""

from dnspec.contract.reference import get_contrastive_denoising_training_group


def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    query_class, query_bbox, attn_mask, meta = get_contrastive_denoising_training_group(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
    )
    if attn_mask is not None:
        num_dn = meta["dn_num_split"][0]
        attn_mask[num_dn:, :num_dn] = False
    return query_class, query_bbox, attn_mask, meta
