"""A user's package exposing a conforming CDN builder through the entry-point group
``dnspec.implementations`` (see pyproject.toml)."""

from dnspec.contract.reference import get_contrastive_denoising_training_group


def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    return get_contrastive_denoising_training_group(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
    )
