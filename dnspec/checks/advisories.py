"""Advisories: desirable properties that RT-DETR's own builder violates.

They are reported next to the contract properties but never fail the contract run of
an implementation that keeps upstream behaviour (the reference, transformers' ports);
they are enforced under ``--strict`` and for implementations that declare
``fixes_advisories`` (dnspec's ``fast-fixed``). Each check raises
:class:`~dnspec.checks.violations.PropertyViolation` whose message says what upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy import stats

from dnspec.calling.call import call_implementation
from dnspec.checks.box_checks import COLLAPSED_SIDE
from dnspec.checks.distributions import DEFAULT_SEED, FALSE_ALARM, uniform_boxes_case
from dnspec.checks.invariants import gt_rows, layout_of
from dnspec.checks.violations import PropertyViolation
from dnspec.contract.decode import recover_labels
from dnspec.generation.cases import CdnCase

# the highest tolerated fraction of collapsed sides on the collapse workload; upstream
# collapses ~25% of negative rows per axis there, a fixed builder ~1e-8 of rows
COLLAPSE_RATE_LIMIT = 1e-3


@dataclass(frozen=True)
class Advisory:
    name: str
    upstream_behaviour: str
    fixed_behaviour: str
    minimal_example: str


ADVISORIES = {
    "box_output_space": Advisory(
        "box_output_space",
        "with box_noise_scale == 0 the boxes come back in box space (cxcywh in [0, 1]); with "
        "box_noise_scale > 0 in logit space (inverse_sigmoid). RT-DETR's decoder always applies a "
        "sigmoid to them, so at scale 0 it decodes sigmoid(0.5) = 0.62 for a centre at 0.5",
        "always return inverse_sigmoid(boxes)",
        "one image, one box (0.5, 0.5, 0.2, 0.2), box_noise_scale=0: returns [0.5, 0.5, 0.2, 0.2], "
        "not [0, 0, -1.386, -1.386]",
    ),
    "no_collapsed_boxes": Advisory(
        "no_collapsed_boxes",
        "a noised box whose corners cross (x2 < x1 after noise: every negative whose x1 moves right "
        "and x2 left, ~1/4 of negatives per axis at scale 1) comes back with side ~1e-5, because "
        "inverse_sigmoid clamps the negative width",
        "reorder the noised corners per axis (min, max), so the box is the one they span",
        "box (0.5, 0.5, 0.2, 0.2), scale 1, negative row with signs (+, -) on x: x1 = 0.4 + 0.15, "
        "x2 = 0.6 - 0.15 cross, width logit = log(1e-5)",
    ),
    "empty_batch_in_graph": Advisory(
        "empty_batch_in_graph",
        "with num_denoising > 0 and no box in the batch it returns (None, None, None, None), so the denoising class "
        "embedding is not in this step's autograd graph; under DistributedDataParallel a rank whose local batch is "
        "all-empty then skips a parameter the other ranks use, and the gradient all-reduce mismatches or hangs "
        "(RT-DETR issue #672; lightly-train hit the same, its PR #446)",
        "return a dummy group (RT-DETRv2 PR #684): one padding query pair per image built with class_embed, hidden "
        "from the object queries, with no positives, so the embedding stays in the graph and contributes zero loss "
        "(dnspec's fast-ddp and fast-fixed-ddp do)",
        "two images without boxes, num_denoising=100: returns (None, None, None, None)",
    ),
    "label_flip_rate": Advisory(
        "label_flip_rate",
        "a flipped label is replaced by one drawn from all num_classes classes, the original "
        "included, so the label changes with probability ratio/2 * (1 - 1/num_classes), not ratio/2 "
        "(with 2 classes, half the intended label noise)",
        "draw the replacement from the num_classes - 1 other classes",
        "num_classes=1: no label ever changes, whatever label_noise_ratio",
    ),
}


def check_box_output_space(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """At every box_noise_scale, including 0, the boxes are logits: sigmoid(bbox) of a
    real row equals its ground-truth box at scale 0."""
    case = CdnCase(
        targets=(
            {"labels": torch.tensor([0], device=device), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]], device=device)},
        ),
        num_classes=2,
        num_queries=0,
        num_denoising=2,
        label_noise_ratio=0.0,
        box_noise_scale=0.0,
        seed=seed,
        device=device,
    )
    bbox = call_implementation(impl, case)[1].detach().cpu().double()
    decoded = bbox[0, 0].sigmoid()
    expected = torch.tensor([0.5, 0.5, 0.2, 0.2], dtype=torch.float64)
    if not torch.allclose(decoded, expected, atol=1e-5):
        raise PropertyViolation(
            f"at box_noise_scale 0 the box of (0.5, 0.5, 0.2, 0.2) comes back as {bbox[0, 0].tolist()}, "
            f"which is not its logit {torch.logit(expected).tolist()}: {ADVISORIES['box_output_space'].upstream_behaviour}"
        )


def check_no_collapsed_boxes(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """On boxes (0.5, 0.5, 0.2, 0.2) at scale 1 (never clipped), at most 1e-3 of real
    rows' sides come back collapsed to <= 2e-5."""
    case = uniform_boxes_case(5, 0.0, 1.0, seed, device=device)
    bbox = call_implementation(impl, case)[1].detach().cpu().double().sigmoid()
    layout = layout_of(case)
    sides = bbox[..., 2:][layout.real_rows()]
    collapsed = float((sides <= COLLAPSED_SIDE).double().mean())
    if collapsed > COLLAPSE_RATE_LIMIT:
        raise PropertyViolation(
            f"{collapsed:.1%} of real box sides collapsed to <= {COLLAPSED_SIDE:g} "
            f"(limit {COLLAPSE_RATE_LIMIT:g}): {ADVISORIES['no_collapsed_boxes'].upstream_behaviour}"
        )


def check_label_flip_rate(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """The label of a real row changes with probability label_noise_ratio / 2 exactly
    (two-sided binomial test at alpha 1e-6; 2 classes, ratio 1, 11520 real rows)."""
    case = uniform_boxes_case(2, 1.0, 1.0, seed, device=device)
    class_embed = case.class_embed()
    outputs = call_implementation(impl, case, class_embed=class_embed)
    labels, _ = recover_labels(outputs[0].detach(), class_embed.weight.detach())
    layout = layout_of(case)
    gt_labels, _ = gt_rows(case, layout)
    real = layout.real_rows()
    changed, total = int((labels.cpu() != gt_labels)[real].sum()), int(real.sum())
    result = stats.binomtest(changed, total, 0.5)
    if result.pvalue < FALSE_ALARM:
        raise PropertyViolation(
            f"labels changed on {changed}/{total} = {changed / total:.3f} of real rows with label_noise_ratio 1, "
            f"not 0.5 (p = {result.pvalue:.3g}): {ADVISORIES['label_flip_rate'].upstream_behaviour}"
        )


def check_empty_batch_in_graph(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """An all-empty batch keeps class_embed in the autograd graph: called with autograd
    on, some output is computed from class_embed.weight, and backpropagating through the
    outputs leaves a gradient (zeros are fine) on it, as on every other step."""
    empty = {"labels": torch.zeros(0, dtype=torch.int64, device=device), "boxes": torch.zeros(0, 4, device=device)}
    case = CdnCase(targets=(empty, empty), num_classes=3, num_queries=4, num_denoising=100, seed=seed, device=device)
    class_embed = case.class_embed()

    def with_grad(*args, **kwargs):
        with torch.enable_grad():
            return impl(*args, **kwargs)

    with_grad.name = getattr(impl, "name", "implementation")
    outputs = call_implementation(with_grad, case, args=case.args(class_embed))
    tensors = [
        o
        for o in (outputs[:3] if isinstance(outputs, (tuple, list)) else ())
        if isinstance(o, torch.Tensor) and o.requires_grad
    ]
    advisory = ADVISORIES["empty_batch_in_graph"]
    if tensors:
        torch.autograd.backward([t.sum() for t in tensors])
    if not tensors or class_embed.weight.grad is None:
        got = "no output that requires grad" if not tensors else "outputs that do not depend on class_embed.weight"
        raise PropertyViolation(
            f"for a batch with no boxes it returns {got}: {advisory.upstream_behaviour}. "
            f"Instead: {advisory.fixed_behaviour}"
        )
