"""Builders whose output depends on their call history, one that prints GitHub workflow
commands, and correct controls written differently (issue 26 parts 3 to 5).

``BROKEN``    each with the property that must catch it (the shape of
              :data:`properties.selftest.broken_variants.BROKEN`):
              ``seeded_once``      noise from a private ``torch.Generator`` seeded once, at
                                   import ("keep the denoising noise independent of the data
                                   loader"): every call is a valid draw, but the same
                                   ``torch.manual_seed`` no longer reproduces a call;
              ``every_fifth_call`` a module-level call counter: every fifth call the object
                                   queries see the dn rows (a stateful cache gone stale);
              ``workflow_commands`` prints ``::stop-commands::``, ``::add-mask::`` and
                                   ``::error file=...::`` lines, then raises with them in
                                   its message, on batches of one image;
``CONTROLS``  correct builders: noise from a private torch generator seeded on every call
              from torch's global RNG, and from numpy's generator seeded the same way (the
              same ``torch.manual_seed`` gives the same outputs, whatever came before).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from dnspec.contract.noise import NoiseDraw
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.implementations.specs import Implementation

_ONCE = torch.Generator().manual_seed(20240607)  # BUG: seeded at import, never again


def seeded_once(
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
    """Draws its noise from a generator seeded once at import: torch.manual_seed has no
    effect, and each call's draw depends on how many calls came before."""
    return reference(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        noise=noise,
        generator=_ONCE,
    )


_CALLS = itertools.count(1)


def every_fifth_call(
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
    """Counts its calls; every fifth call the object queries see the dn rows."""
    outputs = reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )
    if next(_CALLS) % 5 or outputs[0] is None:
        return outputs
    n = outputs[3]["dn_num_split"][0]
    mask = outputs[2].clone()
    mask[n:, :n] = False  # BUG: on the fifth call, the tenth, ...
    return (outputs[0], outputs[1], mask, outputs[3])


WORKFLOW_COMMANDS = (
    "::stop-commands::selftest-token\n"
    "::add-mask::hidden-by-the-builder\n"
    "::error file=denoising.py,line=1::not an error of dnspec\n"
    "  ::warning::indented too"
)


def workflow_commands(
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
    """Prints workflow commands on every call, and on batches of one image raises with
    them in its message."""
    print(WORKFLOW_COMMANDS)
    if len(targets) == 1:
        raise RuntimeError("batch of one:\n" + WORKFLOW_COMMANDS)
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


# --- controls -------------------------------------------------------------------------------


def torch_generator_per_call(
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
    """A private torch generator, seeded on every call from torch's global RNG."""
    generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
    return reference(
        targets,
        num_classes,
        num_queries,
        class_embed,
        num_denoising,
        label_noise_ratio,
        box_noise_scale,
        noise=noise,
        generator=generator,
    )


def numpy_generator_per_call(
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
    """Draws its noise with numpy's generator, seeded on every call from torch's global
    RNG, and hands it to the reference as an injected draw."""
    counts = [len(t["labels"]) for t in targets]
    if noise is None and num_denoising > 0 and max(counts, default=0) > 0:
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        max_gt = max(counts)
        shape = (len(targets), 2 * max_gt * max(1, num_denoising // max_gt))
        boxes = targets[0]["boxes"]
        flip = replacement = sign = magnitude = None
        if label_noise_ratio > 0:
            flip = torch.from_numpy(rng.random(shape) < label_noise_ratio * 0.5).to(boxes.device)
            replacement = torch.from_numpy(rng.integers(0, num_classes, shape, dtype=np.int32)).to(boxes.device)
        if box_noise_scale > 0:
            sign = torch.from_numpy(rng.integers(0, 2, (*shape, 4)) * 2.0 - 1.0).to(boxes.device, boxes.dtype)
            bits = 8 if boxes.dtype in (torch.bfloat16, torch.float16) else 24  # exact in the dtype: below 1
            magnitude = torch.from_numpy(rng.integers(0, 2**bits, (*shape, 4)) / 2**bits).to(boxes.device, boxes.dtype)
        noise = NoiseDraw(flip, replacement, sign, magnitude)
    return reference(
        targets, num_classes, num_queries, class_embed, num_denoising, label_noise_ratio, box_noise_scale, noise=noise
    )


def _impl(name, fn) -> Implementation:
    return Implementation(name=f"selftest-{name}", fn=fn, accepts_noise=True, description=(fn.__doc__ or "").strip())


BROKEN: dict[str, tuple[Implementation, set[str]]] = {
    "seeded_once": (_impl("seeded-once", seeded_once), {"call_history"}),
    "every_fifth_call": (_impl("every-fifth-call", every_fifth_call), {"call_history"}),
}

CONTROLS: dict[str, Implementation] = {
    "torch_generator_per_call": _impl("torch-generator-per-call", torch_generator_per_call),
    "numpy_generator_per_call": _impl("numpy-generator-per-call", numpy_generator_per_call),
}

# SPECs for the command line: properties/selftest/history_variants.py:once_seeded, ...
once_seeded, fifth_call_wrong = (BROKEN[name][0] for name in BROKEN)
per_call_torch, per_call_numpy = CONTROLS.values()
printing_commands = _impl("workflow-commands", workflow_commands)
