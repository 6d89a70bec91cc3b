"""Conforms, but prints a megabyte on every call (a forgotten debug print of a tensor)."""

import sys

from dnspec.contract.reference import get_contrastive_denoising_training_group

MEGABYTE = "debug " * (2**20 // 6)


def build(targets, num_classes, num_queries, class_embed, num_denoising=100, label_noise_ratio=0.5, box_noise_scale=1.0):
    print(MEGABYTE)
    sys.stderr.write("warning from build\n")
    return get_contrastive_denoising_training_group(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
    )
