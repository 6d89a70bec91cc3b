"""Builders that depart from RT-DETR's noise by a stated relative effect in one parameter,
drawing their noise in another order than RT-DETR's (so that no same-seed comparison can
see them): the proof that the statistical properties have the power
:mod:`dnspec.checks.power` states. And correct builders written differently (other draw
orders, a private torch generator or numpy's, each seeded on every call from torch's
global RNG), which must conform.

Every builder here draws a :class:`~dnspec.contract.noise.NoiseDraw` its own way and hands
it to the reference's :func:`~dnspec.contract.reference.build_from_noise`; an injected
``noise=`` is applied as given (so the exact properties see the reference's transform).

``departed(parameter, effect)`` builds the builder departing by ``effect`` in one of
:data:`PARAMETERS`; :data:`CAUGHT_BY` names the statistical property that must catch it.
"""

from __future__ import annotations

import numpy as np
import torch

from dnspec.contract.noise import NoiseDraw
from dnspec.contract.reference import NO_OUTPUT, build_from_noise
from dnspec.contract.validation import validate_cdn_inputs
from dnspec.implementations.specs import Implementation

# parameter -> the statistical property that must catch a departure in it
CAUGHT_BY = {
    "flip_all": "label_flip_rate",
    "flip_positive": "label_flip_rate",
    "flip_negative": "label_flip_rate",
    "replacement_last_class": "replacement_uniform",
    "replacement_never_last": "replacement_uniform",
    "positive_range": "box_magnitudes",
    "negative_range": "box_magnitudes",
    "sign_balance": "box_magnitudes",
    "coordinates_coupled": "noise_independence",
    "label_box_coupled": "label_noise_independence",
}
PARAMETERS = tuple(CAUGHT_BY)


def _negative_rows(num_rows: int, max_gt: int, device) -> torch.Tensor:
    """[N] bool: the negative rows (rows [m, 2m) of each 2m-wide group)."""
    return (torch.arange(num_rows, device=device) % (2 * max_gt)) >= max_gt


def _other_order_draw(bs, n, num_classes, ratio, scale, dtype, device, max_gt, parameter=None, effect=0.0):
    """Draw the noise from torch's global RNG box noise first (magnitudes, then signs as
    rand < 0.5), then labels (replacement classes, then the flip uniforms): another order
    and other calls than RT-DETR's, so the same seed gives other numbers. With
    ``parameter`` set, that one parameter departs by the relative ``effect``."""
    flip = replacement = sign = magnitude = None
    negative = _negative_rows(n, max_gt, device)[None, :, None]
    if scale > 0:
        magnitude = torch.rand((bs, n, 4), dtype=dtype, device=device)
        p_up = 0.5 * (1 + effect) if parameter == "sign_balance" else 0.5
        sign_uniform = torch.rand((bs, n, 4), device=device)
        sign = torch.where(sign_uniform < p_up, 1.0, -1.0).to(dtype)
        if parameter == "positive_range":  # U[0, 1 - e) on positive rows
            magnitude = torch.where(negative, magnitude, magnitude * (1 - effect))
        if parameter == "negative_range":  # multiplier U[1, 2 - e) on negative rows
            magnitude = torch.where(negative, magnitude * (1 - effect), magnitude)
        if parameter == "coordinates_coupled":  # y1 copies x1's draw with probability e
            copy = torch.rand((bs, n), device=device) < effect
            magnitude[..., 1] = torch.where(copy, magnitude[..., 0], magnitude[..., 1])
            sign[..., 1] = torch.where(copy, sign[..., 0], sign[..., 1])
    if ratio > 0:
        if parameter == "replacement_never_last":  # off by one: the last class is never drawn
            replacement = torch.randint(0, num_classes - 1, (bs, n), device=device).to(torch.int32)
        elif parameter == "replacement_last_class" and num_classes > 2:
            # among the classes other than 0 (K of them), the last one is drawn (1 - e) / K of the time
            k = num_classes - 1
            weights = torch.ones(num_classes, device=device, dtype=torch.float64)
            weights[-1] = (1 - effect) * (k - 1) / (k - 1 + effect)
            replacement = torch.multinomial(weights, bs * n, replacement=True).reshape(bs, n).to(torch.int32)
        else:
            replacement = torch.randint(0, num_classes, (bs, n), device=device).to(torch.int32)
        probability = torch.full((1, n), ratio * 0.5, device=device)
        if parameter == "flip_all":
            probability = probability * (1 - effect)
        if parameter == "flip_positive":
            probability = torch.where(~negative[..., 0], probability * (1 - effect), probability)
        if parameter == "flip_negative":
            probability = torch.where(negative[..., 0], probability * (1 - effect), probability)
        flip = torch.rand((bs, n), device=device) < probability
        if parameter == "label_box_coupled" and sign is not None:
            # x1's sign is forced + on a flipped row with probability e, and forced - on a
            # kept row with probability e f / (1 - f) (f = ratio / 2), so that its marginal
            # stays 0.5 and P(+ | flipped) = 0.5 (1 + e); a changed label is a flipped row
            # whose replacement (drawn independently) differs, so P(+ | changed) = 0.5 (1 + e)
            f = ratio * 0.5
            forced = torch.rand((bs, n), device=device)
            up = flip & (forced < effect)
            down = ~flip & (forced < effect * f / (1 - f))
            sign[..., 0] = torch.where(up, 1.0, torch.where(down, -1.0, sign[..., 0])).to(dtype)
    return NoiseDraw(flip, replacement, sign, magnitude)


def _private_generator_draw(bs, n, num_classes, ratio, scale, dtype, device, max_gt):
    """RT-DETR's draws in RT-DETR's order, from a private generator seeded on each call
    from torch's global RNG (one int64 draw): other numbers, the same distributions."""
    seed = int(torch.randint(0, 2**62, (1,)))
    generator = torch.Generator(device=device).manual_seed(seed)
    flip = replacement = sign = magnitude = None
    if ratio > 0:
        flip = torch.rand((bs, n), generator=generator, device=device) < ratio * 0.5
        replacement = torch.randint(0, num_classes, (bs, n), generator=generator, device=device).to(torch.int32)
    if scale > 0:
        sign = torch.randint(0, 2, (bs, n, 4), generator=generator, device=device).to(dtype) * 2.0 - 1.0
        magnitude = torch.rand((bs, n, 4), generator=generator, device=device, dtype=dtype)
    return NoiseDraw(flip, replacement, sign, magnitude)


def _numpy_draw(bs, n, num_classes, ratio, scale, dtype, device, max_gt):
    """The same distributions from numpy's PCG64 generator seeded on each call from torch's
    global RNG, signs first, then magnitudes, then labels."""
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
    flip = replacement = sign = magnitude = None
    if scale > 0:
        sign = torch.from_numpy(rng.choice(np.array([-1.0, 1.0]), size=(bs, n, 4))).to(device=device, dtype=dtype)
        magnitude = torch.from_numpy(rng.random((bs, n, 4), dtype=np.float32)).to(device=device, dtype=dtype)
    if ratio > 0:
        replacement = torch.from_numpy(rng.integers(0, num_classes, size=(bs, n), dtype=np.int32)).to(device)
        flip = torch.from_numpy(rng.random((bs, n)) < ratio * 0.5).to(device)
    return NoiseDraw(flip, replacement, sign, magnitude)


def _builder(name: str, draw) -> Implementation:
    """An implementation that validates like the reference, draws with ``draw`` (unless a
    ``noise=`` draw is injected) and applies the draw with the reference's transform."""

    def fn(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        *,
        noise=None,
    ):
        validate_cdn_inputs(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale
        )
        max_gt = max((len(t["labels"]) for t in targets), default=0)
        if num_denoising <= 0 or max_gt == 0:
            return NO_OUTPUT
        if noise is None:
            n = 2 * max_gt * max(1, num_denoising // max_gt)
            dtype = targets[0]["boxes"].dtype
            device = targets[0]["labels"].device
            noise = draw(len(targets), n, num_classes, label_noise_ratio, box_noise_scale, dtype, device, max_gt)
        return build_from_noise(
            targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise
        )

    return Implementation(name, fn, accepts_noise=True)


def departed(parameter: str, effect: float) -> Implementation:
    """A builder drawing in another order whose ``parameter`` departs by the relative ``effect``."""
    if parameter not in CAUGHT_BY:
        raise ValueError(f"parameter: unknown {parameter!r}; choose one of {', '.join(PARAMETERS)}")

    def draw(*args):
        return _other_order_draw(*args, parameter=parameter, effect=effect)

    return _builder(f"{parameter}_{effect:g}", draw)


# correct builders written differently: they must conform
CONTROLS = {
    "other_order": _builder("other_order", _other_order_draw),
    "private_generator": _builder("private_generator", _private_generator_draw),
    "numpy_generator": _builder("numpy_generator", _numpy_draw),
}
