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

from dnspec.calling.call import call_implementation
from dnspec.checks.invariants import gt_rows, layout_of
from dnspec.checks.violations import PropertyViolation
from dnspec.contract.decode import corners, decode_boxes, expects_logit_space, recover_labels
from dnspec.generation.cases import CdnCase

FALSE_ALARM = 1e-6
DEFAULT_SEED = 20261124


@dataclass(frozen=True)
class Workload:
    batch_size: int = 64
    boxes_per_image: int = 30
    num_denoising: int = 100


def uniform_boxes_case(
    num_classes, label_noise_ratio, box_noise_scale, seed, *, labels="random", device="cpu", workload=Workload()
):
    """A crowded batch of identical central boxes (0.5, 0.5, 0.2, 0.2) with labels drawn
    from ``seed`` (or all 0 when ``labels == 'zero'``); every second image holds half as
    many boxes, so the batch has padding rows too."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for image in range(workload.batch_size):
        n = workload.boxes_per_image if image % 2 == 0 else workload.boxes_per_image // 2
        lab = (
            torch.zeros(n, dtype=torch.int64)
            if labels == "zero"
            else torch.randint(0, num_classes, (n,), generator=generator)
        )
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


# --- the samples each check tests (the checks below, and the report's pictures, read them) ---


def label_flip_samples(impl, seed: int = DEFAULT_SEED, device: str = "cpu") -> dict:
    """On the flip-rate workload (5 classes, ratio 0.6): per role, rows whose label
    changed, rows in all and the binomial test's p-value; the expected rate, the per-test
    alpha and how many padding rows changed class."""
    case = uniform_boxes_case(5, 0.6, 1.0, seed, device=device)
    labels, gt_labels, real = _labels(impl, case)
    negative = layout_of(case).row_is_negative()[None, :].expand_as(real)
    p0 = expected_flip_rate(0.6, 5, impl.fixes_advisories)
    roles = {}
    for role, rows in (("positive", real & ~negative), ("negative", real & negative)):
        changed, total = int((labels != gt_labels)[rows].sum()), int(rows.sum())
        roles[role] = {"changed": changed, "total": total, "p_value": float(stats.binomtest(changed, total, p0).pvalue)}
    return {
        "roles": roles,
        "expected_rate": p0,
        "alpha": FALSE_ALARM / 2,
        "padding_changed": int((labels != gt_labels)[~real].sum()),
    }


def replacement_samples(impl, seed: int = DEFAULT_SEED, device: str = "cpu") -> dict:
    """With every label 0, 10 classes and ratio 1: how often each of the classes 1..9
    replaced label 0, and the chi-square test's p-value (nan when no label changed)."""
    case = uniform_boxes_case(10, 1.0, 1.0, seed, labels="zero", device=device)
    labels, gt_labels, real = _labels(impl, case)
    counts = np.bincount(labels[real & (labels != gt_labels)].numpy(), minlength=10)[1:10]
    p_value = float(stats.chisquare(counts).pvalue) if counts.sum() else float("nan")
    return {"classes": list(range(1, 10)), "counts": counts.tolist(), "p_value": p_value, "alpha": FALSE_ALARM}


def contingency(a, b, bins) -> tuple[np.ndarray, float]:
    """The contingency table of two binned samples and its chi-square p-value (nan when a
    row or column is empty)."""
    a, b = bins(np.asarray(a)), bins(np.asarray(b))
    size = int(max(a.max(), b.max())) + 1
    table = np.zeros((size, size))
    np.add.at(table, (a, b), 1)
    if (table.sum(0) == 0).any() or (table.sum(1) == 0).any():
        return table, float("nan")
    return table, float(stats.chi2_contingency(table).pvalue)


def label_noise_tables(impl, seed: int = DEFAULT_SEED, device: str = "cpu") -> dict:
    """On the flip-rate workload: per pair (the same slot in consecutive groups, a
    positive row and its negative twin, consecutive images at the same row), the 2x2
    contingency table of "label changed" and its p-value; and the per-test alpha."""
    case = uniform_boxes_case(5, 0.6, 1.0, seed, device=device)
    labels, gt_labels, real = _labels(impl, case)
    changed = (labels != gt_labels).to(torch.int64)
    layout = layout_of(case)
    width, m = 2 * layout.max_gt, layout.max_gt
    positive = real & ~layout.row_is_negative()[None, :]
    later = real[:, :-width] & real[:, width:]
    twins = positive[:, :-m] & real[:, m:]
    images = real[:-1] & real[1:]
    pairs = {
        "the same slot in consecutive groups": (changed[:, :-width][later], changed[:, width:][later]),
        "a positive row and its negative twin": (changed[:, :-m][twins], changed[:, m:][twins]),
        "consecutive images at the same row": (changed[:-1][images], changed[1:][images]),
    }
    tables = {name: contingency(a.numpy(), b.numpy(), lambda x: x) for name, (a, b) in pairs.items()}
    return {"tables": tables, "alpha": FALSE_ALARM / len(pairs), "bins": ["kept", "changed"]}


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


def box_magnitude_samples(impl, seed: int = DEFAULT_SEED, device: str = "cpu") -> dict:
    """On the displacement workload: |u| on positive rows and |u| - 1 on negative rows
    (each should be U[0, 1)) with their KS statistics and p-values, and per coordinate the
    positive displacements, the total and the binomial p-value; the per-test alpha."""
    case, layout, u = _displacements(impl, seed, device)
    real = layout.real_rows()
    negative = layout.row_is_negative()[None, :].expand_as(real)
    magnitudes = {}
    for name, rows, shift in (("positive", real & ~negative, 0.0), ("negative", real & negative, 1.0)):
        values = (u[rows].abs() - shift).flatten().numpy()
        result = stats.kstest(values, "uniform")
        magnitudes[name] = {
            "values": values,
            "shift": shift,
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
        }
    signs = {}
    for k, name in enumerate(("x1", "y1", "x2", "y2")):
        column = u[..., k][real]
        ups = int((column > 0).sum())
        signs[name] = {
            "up": ups,
            "total": int(column.numel()),
            "p_value": float(stats.binomtest(ups, column.numel(), 0.5).pvalue),
        }
    return {"magnitudes": magnitudes, "signs": signs, "alpha": FALSE_ALARM / 6}


def box_noise_tables(impl, seed: int = DEFAULT_SEED, device: str = "cpu") -> dict:
    """On the displacement workload: per pair, the 4x4 contingency table of quartiles of
    the signed u and its p-value; and the per-test alpha (pairs: see
    :func:`check_noise_independence`)."""
    case, layout, u = _displacements(impl, seed, device)
    real = layout.real_rows()
    negative = layout.row_is_negative()[None, :].expand_as(real)
    group_width, m = 2 * layout.max_gt, layout.max_gt
    pairs = {}
    for role, rows in (("positive", real & ~negative), ("negative", real & negative)):
        later = rows[:, group_width:] & rows[:, :-group_width]
        both_images = rows[:-1] & rows[1:]
        pairs[f"coordinates x1 and y1 of a {role} row"] = (u[..., 0][rows], u[..., 1][rows])
        pairs[f"corners x1 and x2 of a {role} row"] = (u[..., 0][rows], u[..., 2][rows])
        pairs[f"the same {role} slot in consecutive groups"] = (
            u[:, :-group_width][later].flatten(),
            u[:, group_width:][later].flatten(),
        )
        pairs[f"consecutive images at the same {role} row"] = (
            u[:-1][both_images].flatten(),
            u[1:][both_images].flatten(),
        )
    twins = (real & ~negative)[:, :-m] & real[:, m:]
    pairs["a positive row and its negative twin"] = (u[:, :-m][twins].flatten(), u[:, m:][twins].flatten())

    def quartiles(x):
        return np.digitize(x, np.quantile(x, [0.25, 0.5, 0.75]))

    tables = {name: contingency(a.numpy(), b.numpy(), quartiles) for name, (a, b) in pairs.items()}
    return {"tables": tables, "alpha": FALSE_ALARM / len(pairs), "bins": ["q1", "q2", "q3", "q4"]}


# --- the checks ------------------------------------------------------------------------------


def check_label_flip_rate(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """On positive rows and on negative rows separately, the fraction of real rows whose
    class differs from their label is label_noise_ratio/2 * (1 - 1/num_classes) (two
    two-sided binomial tests, 5 classes, ratio 0.6); padding rows never change."""
    samples = label_flip_samples(impl, seed, device)
    p0 = samples["expected_rate"]
    for role, r in samples["roles"].items():
        _require(
            r["p_value"],
            samples["alpha"],
            f"label changed on {r['changed']}/{r['total']} = {r['changed'] / r['total']:.4f} real {role} rows, "
            f"expected rate {p0:.4f}",
        )
    if samples["padding_changed"]:
        raise PropertyViolation(
            f"{samples['padding_changed']} padding rows changed class; label noise must touch real rows only"
        )


def _independent(tables: dict, alpha: float, what: str):
    """Each contingency table passes its chi-square test of independence at ``alpha``."""
    for name, (table, p_value) in tables.items():
        if p_value != p_value:  # nan: an empty row or column
            raise PropertyViolation(
                f"{what} for {name} takes too few distinct values to be random: {table.astype(int).tolist()}"
            )
        _require(p_value, alpha, f"{what} for {name} is dependent (contingency {table.astype(int).tolist()})")


def check_label_noise_independence(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Whether a real row's label changed is independent between the same slot in
    consecutive groups, between a positive row and its negative twin (same slot, same
    group), and between consecutive images at the same row (2x2 chi-square tests)."""
    samples = label_noise_tables(impl, seed, device)
    _independent(samples["tables"], samples["alpha"], "label noise")


def check_replacement_uniform(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Replaced labels are uniform over the other classes: with every label 0, 10
    classes and ratio 1, the changed rows' classes are uniform on 1..9 (chi-square)."""
    samples = replacement_samples(impl, seed, device)
    if sum(samples["counts"]) == 0:
        raise PropertyViolation("no label changed with label_noise_ratio = 1")
    _require(
        samples["p_value"],
        samples["alpha"],
        f"replacement classes 1..9 were drawn {samples['counts']} times; expected uniform",
    )


def check_box_magnitudes(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Corner displacements are |u| * d with |u| ~ U[0, 1) on positive rows and
    |u| - 1 ~ U[0, 1) on negative rows (two KS tests), and the signs of each of the four
    coordinates are fair (four binomial tests)."""
    samples = box_magnitude_samples(impl, seed, device)
    alpha = samples["alpha"]
    for name, m in samples["magnitudes"].items():
        values = m["values"]
        _require(
            m["p_value"],
            alpha,
            f"{name} rows: |u|{' - 1' if m['shift'] else ''} has mean {values.mean():.4f}, range "
            f"[{values.min():.4f}, {values.max():.4f}]; expected U[0, 1) (KS statistic {m['statistic']:.4f})",
        )
    for name, sign in samples["signs"].items():
        _require(
            sign["p_value"],
            alpha,
            f"{sign['up']}/{sign['total']} {name} displacements are positive; expected fair signs",
        )


def check_noise_independence(impl, seed: int = DEFAULT_SEED, device: str = "cpu"):
    """Box noise is independent across coordinates, corners, groups, roles and images:
    within positive rows and within negative rows, the quartile of the signed u for x1
    vs y1 of a row, x1 vs x2 of a row (the two corners of one axis), a row vs the same
    slot in the next group, and image i vs image i+1 at the same row; and a positive
    row vs its negative twin (same slot, same group). Each pair passes a chi-square test
    of independence on its 4x4 contingency table of quartiles."""
    samples = box_noise_tables(impl, seed, device)
    _independent(samples["tables"], samples["alpha"], "box noise")


# property name -> the helper returning the samples it tests
SAMPLES = {
    "label_flip_rate": label_flip_samples,
    "replacement_uniform": replacement_samples,
    "label_noise_independence": label_noise_tables,
    "box_magnitudes": box_magnitude_samples,
    "noise_independence": box_noise_tables,
}
