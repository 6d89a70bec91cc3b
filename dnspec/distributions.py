"""Statistical properties: the noise has the distributions RT-DETR's has.

Each check runs the implementation once on a large fixed batch, seeded through torch's
global RNG (so any implementation, black box or not, is tested the way it is used), and
applies scipy.stats tests. Every check's total false-alarm probability is at most
``FALSE_ALARM`` = 1e-6: a check making k tests uses alpha = 1e-6 / k for each
(Bonferroni). With the fixed default seed a run is deterministic, so CI never flakes.

Workloads are chosen so that what is tested is observable exactly from the outputs:
boxes (0.5, 0.5, 0.2, 0.2) with box_noise_scale 0.5 are never clipped and their corners
never cross (|noise| < 2 * 0.05 = 0.1 per corner), so each corner's displacement
divided by d = 0.05 is the drawn magnitude (positive rows) or magnitude + 1 (negative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from dnspec.calling import call_implementation
from dnspec.cases import CdnCase
from dnspec.decode import corners, decode_boxes, expects_logit_space, recover_labels
from dnspec.invariants import PropertyViolation, gt_rows, layout_of

FALSE_ALARM = 1e-6
DEFAULT_SEED = 20261124


@dataclass(frozen=True)
class Workload:
    batch_size: int = 64
    boxes_per_image: int = 30
    num_denoising: int = 100


def uniform_boxes_case(num_classes, label_noise_ratio, box_noise_scale, seed, *, labels="random", device="cpu", workload=Workload()):
    """A crowded batch of identical central boxes (0.5, 0.5, 0.2, 0.2) with labels drawn
    from ``seed`` (or all 0 when ``labels == 'zero'``)."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(workload.batch_size):
        n = workload.boxes_per_image
        lab = torch.zeros(n, dtype=torch.int64) if labels == "zero" else torch.randint(0, num_classes, (n,), generator=generator)
        box = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(n, 1)
        targets.append({"labels": lab.to(device), "boxes": box.to(device)})
    return CdnCase(
        targets=tuple(targets),
        num_classes=num_classes,
        num_queries=10,
        num_denoising=workload.num_denoising,
        label_noise_ratio=label_noise_ratio,
        box_noise_scale=box_noise_scale,
        embed_dim=16,
        seed=seed,
        device=device,
    )


def _labels(impl, case):
    class_embed = case.class_embed()
    outputs = call_implementation(impl, case, class_embed=class_embed)
    labels, _ = recover_labels(outputs[0].detach(), class_embed.weight.detach())
    layout = layout_of(case)
    gt_labels, _ = gt_rows(case, layout)
    return labels.cpu(), gt_labels, layout.real_rows()


def _require(p_value: float, alpha: float, message: str):
    if p_value < alpha:
        raise PropertyViolation(f"{message} (p = {p_value:.3g} < alpha = {alpha:.3g})")


def expected_flip_rate(label_noise_ratio: float, num_classes: int, fixes_advisories: bool) -> float:
    """Upstream flips a real row with probability ratio/2 and replaces its label by one
    drawn uniformly from all num_classes classes, so the label changes with probability
    ratio/2 * (1 - 1/num_classes); an implementation fixing advisory (c) always picks
    another class, so ratio/2."""
    if fixes_advisories:
        return label_noise_ratio / 2
    return label_noise_ratio / 2 * (1 - 1 / num_classes)


def check_label_flip_rate(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """The fraction of real rows whose class differs from their label is
    label_noise_ratio/2 * (1 - 1/num_classes) (two-sided binomial test, 5 classes,
    ratio 0.6, 11520 real rows)."""
    case = uniform_boxes_case(5, 0.6, 1.0, seed, device=device)
    labels, gt_labels, real = _labels(impl, case)
    changed = int((labels != gt_labels)[real].sum())
    total = int(real.sum())
    p0 = expected_flip_rate(0.6, 5, impl.fixes_advisories)
    result = stats.binomtest(changed, total, p0)
    _require(result.pvalue, FALSE_ALARM, f"label changed on {changed}/{total} = {changed / total:.4f} real rows, expected rate {p0:.4f}")
    padding_changed = int((labels != gt_labels)[~real].sum())
    if padding_changed:
        raise PropertyViolation(f"{padding_changed} padding rows changed class; label noise must touch real rows only")


def check_replacement_uniform(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Replaced labels are uniform over the other classes: with every label 0, 10
    classes and ratio 1, the changed rows' classes are uniform on 1..9 (chi-square)."""
    case = uniform_boxes_case(10, 1.0, 1.0, seed, labels="zero", device=device)
    labels, gt_labels, real = _labels(impl, case)
    changed = labels[real & (labels != gt_labels)]
    counts = np.bincount(changed.numpy(), minlength=10)[1:10]
    if counts.sum() == 0:
        raise PropertyViolation("no label changed with label_noise_ratio = 1")
    result = stats.chisquare(counts)
    _require(result.pvalue, FALSE_ALARM, f"replacement classes 1..9 were drawn {counts.tolist()} times; expected uniform")


def _displacements(impl, seed, device):
    """Signed corner displacements / d on the unclipped, uncrossed workload, plus role masks."""
    case = uniform_boxes_case(5, 0.0, 0.5, seed, device=device)
    outputs = call_implementation(impl, case)
    layout = layout_of(case)
    decoded = decode_boxes(outputs[1].detach().cpu(), expects_logit_space(0.5, impl.fixes_advisories))
    _, gt_boxes = gt_rows(case, layout)
    d = (gt_boxes[..., 2:] / 2 * 0.5).repeat(1, 1, 2)  # (w/2, h/2, w/2, h/2) * scale
    u = (corners(decoded) - corners(gt_boxes)) / d  # signed, [bs, N, 4]
    return case, layout, u


def check_box_magnitudes(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Corner displacements are |u| * d with |u| ~ U[0, 1) on positive rows and
    |u| - 1 ~ U[0, 1) on negative rows (two KS tests), and the signs are fair (binomial)."""
    case, layout, u = _displacements(impl, seed, device)
    real = layout.real_rows()
    negative = layout.row_is_negative()[None, :].expand_as(real)
    alpha = FALSE_ALARM / 3
    for name, rows, shift in (("positive", real & ~negative, 0.0), ("negative", real & negative, 1.0)):
        magnitudes = (u[rows].abs() - shift).flatten().numpy()
        result = stats.kstest(magnitudes, "uniform")
        _require(
            result.pvalue,
            alpha,
            f"{name} rows: |u|{' - 1' if shift else ''} has mean {magnitudes.mean():.4f}, range "
            f"[{magnitudes.min():.4f}, {magnitudes.max():.4f}]; expected U[0, 1) (KS statistic {result.statistic:.4f})",
        )
    signs = u[real].flatten()
    ups = int((signs > 0).sum())
    result = stats.binomtest(ups, signs.numel(), 0.5)
    _require(result.pvalue, alpha, f"{ups}/{signs.numel()} corner displacements are positive; expected fair signs")


def check_noise_independence(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Box noise is independent across coordinates, groups and images: within positive
    rows and within negative rows, the quartile of the signed u for x1 vs y1 of a row,
    for a row vs the same slot in the next group, and for image i vs image i+1 at the same
    row, each pass a chi-square test of independence (4x4 contingency)."""
    case, layout, u = _displacements(impl, seed, device)
    real = layout.real_rows()
    negative = layout.row_is_negative()[None, :].expand_as(real)
    group_width = 2 * layout.max_gt
    bins = lambda x: np.digitize(x, np.quantile(x, [0.25, 0.5, 0.75]))
    pairs = {}
    for role, rows in (("positive", real & ~negative), ("negative", real & negative)):
        later = rows[:, group_width:] & rows[:, :-group_width]
        both_images = rows[:-1] & rows[1:]
        pairs[f"coordinates x1 and y1 of a {role} row"] = (u[..., 0][rows], u[..., 1][rows])
        pairs[f"the same {role} slot in consecutive groups"] = (
            u[:, :-group_width][later].flatten(),
            u[:, group_width:][later].flatten(),
        )
        pairs[f"consecutive images at the same {role} row"] = (u[:-1][both_images].flatten(), u[1:][both_images].flatten())
    alpha = FALSE_ALARM / len(pairs)
    for what, (a, b) in pairs.items():
        a, b = a.numpy(), b.numpy()
        table = np.zeros((4, 4))
        np.add.at(table, (bins(a), bins(b)), 1)
        if (table.sum(0) == 0).any() or (table.sum(1) == 0).any():
            raise PropertyViolation(f"noise for {what} takes too few distinct values to be random: {table.tolist()}")
        result = stats.chi2_contingency(table)
        _require(result.pvalue, alpha, f"box noise for {what} is dependent (contingency {table.astype(int).tolist()})")
