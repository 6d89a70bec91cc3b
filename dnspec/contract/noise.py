"""The randomness of a CDN call, separated from its transform.

``draw_noise`` draws every random quantity one call consumes into a :class:`NoiseDraw`;
the builders in :mod:`dnspec.contract.reference` and :mod:`dnspec.implementations.fast` apply a draw without
touching any random number generator. Injecting the same draw into two implementations,
or into one implementation on two devices, makes their outputs comparable exactly.

With ``generator=None`` the draws come from torch's global RNG in RT-DETR's order and
with RT-DETR's shapes and dtypes, so ``torch.manual_seed(s)`` followed by a draw gives
the numbers upstream would have used:

1. ``rand  [bs, N]`` float32, flip where ``< label_noise_ratio / 2``   (only if ratio > 0)
2. ``randint(0, num_classes) [bs, N]`` int32 replacement labels        (only if ratio > 0)
3. ``randint(0, 2) [bs, N, 4]`` in the box dtype, mapped to signs -1/+1 (only if scale > 0)
4. ``rand [bs, N, 4]`` in the box dtype, magnitudes in [0, 1)           (only if scale > 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NoiseDraw:
    """Every random quantity of one call, one entry per denoising row.

    ``label_flip`` (bool [bs, N]) and ``replacement_label`` (int32 [bs, N], values in
    [0, num_classes)) are None when label_noise_ratio == 0; ``box_sign`` (float
    [bs, N, 4], values -1 or +1) and ``box_magnitude`` (float [bs, N, 4], values in
    [0, 1), before negatives add 1) are None when box_noise_scale == 0. Upstream draws
    nothing in those cases, and neither does :func:`draw_noise`.
    """

    label_flip: torch.Tensor | None
    replacement_label: torch.Tensor | None
    box_sign: torch.Tensor | None
    box_magnitude: torch.Tensor | None

    def to(self, device=None, box_dtype: torch.dtype | None = None) -> NoiseDraw:
        """The same draw on another device, box fields optionally cast to ``box_dtype``."""

        def move(t, dtype=None):
            return None if t is None else t.to(device=device, dtype=dtype)

        return NoiseDraw(
            label_flip=move(self.label_flip),
            replacement_label=move(self.replacement_label),
            box_sign=move(self.box_sign, box_dtype),
            box_magnitude=move(self.box_magnitude, box_dtype),
        )


def draw_noise(
    batch_size: int,
    num_dn_rows: int,
    num_classes: int,
    label_noise_ratio: float,
    box_noise_scale: float,
    *,
    device: torch.device | str = "cpu",
    box_dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> NoiseDraw:
    """Draw the noise of one call of ``batch_size`` images with ``num_dn_rows`` dn rows.

    Order, shapes and dtypes are upstream's (see the module docstring), so with
    ``generator=None`` the global RNG advances exactly as RT-DETR's function advances it.
    """
    shape = (batch_size, num_dn_rows)
    label_flip = replacement_label = box_sign = box_magnitude = None
    if label_noise_ratio > 0:
        uniform = torch.rand(shape, dtype=torch.float32, device=device, generator=generator)
        label_flip = uniform < (label_noise_ratio * 0.5)
        replacement_label = torch.randint(0, num_classes, shape, dtype=torch.int32, device=device, generator=generator)
    if box_noise_scale > 0:
        box_sign = torch.randint(0, 2, (*shape, 4), dtype=box_dtype, device=device, generator=generator) * 2.0 - 1.0
        box_magnitude = torch.rand((*shape, 4), dtype=box_dtype, device=device, generator=generator)
    return NoiseDraw(label_flip, replacement_label, box_sign, box_magnitude)
