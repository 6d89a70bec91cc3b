"""A builder in a repository whose top package is named like an installed package."""

import yaml  # noqa: F401  (PyYAML)

from .helpers import CONFIG

REAL_YAML = hasattr(yaml, "safe_load")


def build(targets, num_classes, num_queries, class_embed, num_denoising=CONFIG["num_denoising"],
          label_noise_ratio=CONFIG["label_noise_ratio"], box_noise_scale=1.0):
    from dnspec.contract.reference import get_contrastive_denoising_training_group

    return get_contrastive_denoising_training_group(targets, num_classes, num_queries, class_embed, num_denoising,
                                                    label_noise_ratio, box_noise_scale)
