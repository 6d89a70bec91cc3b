"""Statistical properties: the noise has the distributions RT-DETR's has.

Each check pools the outputs of several calls of the implementation, each on a large
fixed batch seeded through torch's global RNG (so any implementation, black box or not,
is tested the way it is used), and applies scipy.stats tests. How many calls a property
pools is its profile's (:data:`dnspec.generation.profiles.STATISTICAL_CALLS`): enough that
every noise parameter's relative departure of 3% (ci) or 1% (thorough) is detected with
probability >= 99% (:mod:`dnspec.checks.power` computes the power of each test from the
sample sizes below). Every check's total false-alarm probability is at most
``FALSE_ALARM`` = 1e-6: a check making k tests uses alpha = 1e-6 / k for each
(Bonferroni). With the fixed default seed a run is deterministic, so CI never flakes.

Workloads are chosen so that what is tested is observable exactly from the outputs:
boxes (0.5, 0.5, 0.2, 0.2) with box_noise_scale 0.5 are never clipped and their corners
never cross (|noise| < 2 * 0.05 = 0.1 per corner), so each corner's displacement
divided by d = 0.05 is the drawn magnitude (positive rows) or magnitude + 1 (negative),
with the drawn sign.
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
COORDINATES = ("x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class Workload:
    batch_size: int = 64
    boxes_per_image: int = 30
    num_denoising: int = 100


# one call of a statistical property: 256 images of 50 and 25 boxes, 2 groups, 38,400 real rows
STATISTICAL = Workload(batch_size=256, boxes_per_image=50, num_denoising=100)
FLIP_CLASSES, FLIP_RATIO = 5, 1.0  # flip workload: label changes with probability 0.5 * (1 - 1/5) = 0.4
REPLACEMENT_CLASSES = 4  # replacement workload: every label 0, replaced by one of 1..3
BOX_SCALE = 0.5  # never clipped, never crossed


def calls_for(name: str, calls: int | None = None) -> int:
    """How many calls statistical property ``name`` pools: ``calls``, else the loaded
    profile's (:data:`dnspec.generation.profiles.STATISTICAL_CALLS`)."""
    if calls is not None:
        if calls < 1:
            raise ValueError(f"calls: a statistical property needs at least 1 call, got {calls}")
        return calls
    from dnspec.generation import profiles

    return profiles.STATISTICAL_CALLS[profiles.statistical_profile()][name]


def call_seed(seed: int, index: int) -> int:
    """The torch seed of call ``index`` of a pooled workload seeded ``seed`` (spread apart,
    so that the calls of ``seed`` and ``seed + 1`` never share a seed)."""
    return (seed * 1_000_003 + index) % 2**63


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


@dataclass(frozen=True)
class Rows:
    """What one call showed, row by row ([bs, N] unless noted): whether the row is real and
    negative, its ground-truth and recovered class (None without label noise), and the
    signed corner displacements / d ([bs, N, 4]; None without box noise)."""

    real: torch.Tensor
    negative: torch.Tensor
    gt_labels: torch.Tensor
    labels: torch.Tensor | None
    u: torch.Tensor | None

    @property
    def changed(self) -> torch.Tensor:
        return self.labels != self.gt_labels


def _one_call(impl, case, labels: bool, boxes: bool) -> Rows:
    class_embed = case.class_embed()
    outputs = call_implementation(impl, case, class_embed=class_embed)
    layout = layout_of(case)
    gt_labels, gt_boxes = gt_rows(case, layout)
    real = layout.real_rows()
    recovered = u = None
    if labels:
        recovered = recover_labels(outputs[0].detach(), class_embed.weight.detach())[0].cpu()
    if boxes:
        logit = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
        decoded = decode_boxes(outputs[1].detach().cpu(), logit)
        d = (gt_boxes[..., 2:] / 2 * case.box_noise_scale).repeat(1, 1, 2)  # (w/2, h/2, w/2, h/2) * scale
        u = (corners(decoded) - corners(gt_boxes)) / d
    negative = layout.row_is_negative()[None, :].expand_as(real)
    return Rows(real, negative, gt_labels, recovered, u)


def pooled_rows(impl, seed, device, calls, *, num_classes, ratio, scale, zero_labels=False) -> tuple[Rows, dict]:
    """The rows of ``calls`` calls on the statistical batch, stacked along the image axis
    (call i seeded :func:`call_seed`), and the batch's layout facts (max_gt, groups)."""
    parts = []
    for index in range(calls):
        case = uniform_boxes_case(
            num_classes,
            ratio,
            scale,
            call_seed(seed, index),
            labels="zero" if zero_labels else "random",
            device=device,
            workload=STATISTICAL,
        )
        parts.append(_one_call(impl, case, ratio > 0, scale > 0))
    layout = layout_of(case)

    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    rows = Rows(*(cat(n) for n in ("real", "negative", "gt_labels", "labels", "u")))
    return rows, {"max_gt": layout.max_gt, "groups": layout.num_groups}


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


# --- the samples each check tests (the checks below, the report's pictures and the power
# calculation read them) ---


def label_flip_samples(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None) -> dict:
    """On the flip-rate workload (5 classes, ratio 1): per role, rows whose label changed,
    rows in all and the exact binomial test's p-value; the expected rate, the per-test
    alpha and how many padding rows changed class."""
    rows, _ = pooled_rows(
        impl, seed, device, calls_for("label_flip_rate", calls), num_classes=FLIP_CLASSES, ratio=FLIP_RATIO, scale=1.0
    )
    p0 = expected_flip_rate(FLIP_RATIO, FLIP_CLASSES, impl.fixes_advisories)
    changed_rows = rows.changed
    roles = {}
    for role, mask in (("positive", rows.real & ~rows.negative), ("negative", rows.real & rows.negative)):
        changed, total = int(changed_rows[mask].sum()), int(mask.sum())
        roles[role] = {"changed": changed, "total": total, "p_value": float(stats.binomtest(changed, total, p0).pvalue)}
    return {
        "roles": roles,
        "expected_rate": p0,
        "alpha": FALSE_ALARM / 2,
        "padding_changed": int(changed_rows[~rows.real].sum()),
    }


def replacement_samples(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None) -> dict:
    """With every label 0, 4 classes and ratio 1: how often each of the classes 1..3
    replaced label 0, and the chi-square test's p-value (nan when no label changed)."""
    rows, _ = pooled_rows(
        impl,
        seed,
        device,
        calls_for("replacement_uniform", calls),
        num_classes=REPLACEMENT_CLASSES,
        ratio=1.0,
        scale=1.0,
        zero_labels=True,
    )
    chosen = rows.labels[rows.real & rows.changed].numpy()
    counts = np.bincount(chosen, minlength=REPLACEMENT_CLASSES)[1:REPLACEMENT_CLASSES]
    p_value = float(stats.chisquare(counts).pvalue) if counts.sum() else float("nan")
    return {
        "classes": list(range(1, REPLACEMENT_CLASSES)),
        "counts": counts.tolist(),
        "p_value": p_value,
        "alpha": FALSE_ALARM,
    }


def contingency(a, b, bins) -> tuple[np.ndarray, float]:
    """The contingency table of two binned samples and its chi-square p-value (no
    continuity correction, so that the test is the one the power calculation assumes;
    nan when a row or column is empty)."""
    a, b = bins(np.asarray(a)), bins(np.asarray(b))
    size = int(max(a.max(), b.max())) + 1
    table = np.zeros((size, size))
    np.add.at(table, (a, b), 1)
    if (table.sum(0) == 0).any() or (table.sum(1) == 0).any():
        return table, float("nan")
    return table, float(stats.chi2_contingency(table, correction=False).pvalue)


def _binary(x):
    return np.asarray(x).astype(np.int64)


def label_pairs(rows: Rows, facts: dict) -> dict:
    """The pairs the label-independence check tests, each (a, b) of 0/1 arrays: "label
    changed" for the same slot in consecutive groups, a positive row and its negative twin,
    consecutive images at the same row; and a row's "label changed" against the sign and
    the magnitude half (drawn magnitude >= 0.5) of its x1 box noise."""
    changed = rows.changed.to(torch.int64)
    real = rows.real
    m = facts["max_gt"]
    width = 2 * m
    positive = real & ~rows.negative
    later = real[:, :-width] & real[:, width:]
    twins = positive[:, :-m] & real[:, m:]
    images = real[:-1] & real[1:]
    x1 = rows.u[..., 0]
    return {
        "the same slot in consecutive groups": (changed[:, :-width][later], changed[:, width:][later]),
        "a positive row and its negative twin": (changed[:, :-m][twins], changed[:, m:][twins]),
        "consecutive images at the same row": (changed[:-1][images], changed[1:][images]),
        "a row's label change and the sign of its box noise": (changed[real], (x1[real] > 0).to(torch.int64)),
        "a row's label change and the magnitude of its box noise": (
            changed[real],
            (x1[real].abs().remainder(1.0) >= 0.5).to(torch.int64),
        ),
    }


def label_noise_tables(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None) -> dict:
    """On the flip-rate workload with box noise 0.5: per pair (:func:`label_pairs`), the
    2x2 contingency table and its p-value; and the per-test alpha."""
    rows, facts = pooled_rows(
        impl,
        seed,
        device,
        calls_for("label_noise_independence", calls),
        num_classes=FLIP_CLASSES,
        ratio=FLIP_RATIO,
        scale=BOX_SCALE,
    )
    pairs = label_pairs(rows, facts)
    tables = {name: contingency(a.numpy(), b.numpy(), _binary) for name, (a, b) in pairs.items()}
    return {"tables": tables, "alpha": FALSE_ALARM / len(pairs), "bins": ["no", "yes"]}


def _box_rows(impl, seed, device, name, calls):
    return pooled_rows(impl, seed, device, calls_for(name, calls), num_classes=FLIP_CLASSES, ratio=0.0, scale=BOX_SCALE)


def box_magnitude_samples(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None) -> dict:
    """On the displacement workload: |u| on positive rows and |u| - 1 on negative rows
    (each should be U[0, 1)) with their KS statistics and p-values, and per coordinate the
    positive displacements, the total and the exact binomial p-value; the per-test alpha."""
    rows, _ = _box_rows(impl, seed, device, "box_magnitudes", calls)
    u, real = rows.u, rows.real
    magnitudes = {}
    for name, mask, shift in (("positive", real & ~rows.negative, 0.0), ("negative", real & rows.negative, 1.0)):
        values = (u[mask].abs() - shift).flatten().numpy()
        result = stats.kstest(values, "uniform")
        magnitudes[name] = {
            "values": values,
            "shift": shift,
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
        }
    signs = {}
    for k, name in enumerate(COORDINATES):
        column = u[..., k][real]
        ups = int((column > 0).sum())
        signs[name] = {
            "up": ups,
            "total": int(column.numel()),
            "p_value": float(stats.binomtest(ups, column.numel(), 0.5).pvalue),
        }
    return {"magnitudes": magnitudes, "signs": signs, "alpha": FALSE_ALARM / 6}


def box_pairs(rows: Rows, facts: dict) -> dict:
    """The pairs of signed displacements u the box-independence check tests: within
    positive rows and within negative rows, x1 vs y1 of a row, x1 vs x2 of a row, a row vs
    the same slot in the next group, image i vs image i+1 at the same row; and a positive
    row vs its negative twin."""
    u, real, negative = rows.u, rows.real, rows.negative
    group_width, m = 2 * facts["max_gt"], facts["max_gt"]
    pairs = {}
    for role, mask in (("positive", real & ~negative), ("negative", real & negative)):
        later = mask[:, group_width:] & mask[:, :-group_width]
        both_images = mask[:-1] & mask[1:]
        pairs[f"coordinates x1 and y1 of a {role} row"] = (u[..., 0][mask], u[..., 1][mask])
        pairs[f"corners x1 and x2 of a {role} row"] = (u[..., 0][mask], u[..., 2][mask])
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
    return pairs


def _sign(x):
    return (np.asarray(x) > 0).astype(np.int64)


def _upper_half(x):
    return (np.remainder(np.abs(np.asarray(x)), 1.0) >= 0.5).astype(np.int64)


BOX_FEATURES = {"sign": _sign, "magnitude half": _upper_half}


def box_noise_tables(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None) -> dict:
    """On the displacement workload: per pair (:func:`box_pairs`) and per feature of u
    (its sign; its drawn magnitude >= 0.5), the 2x2 contingency table and its p-value;
    and the per-test alpha."""
    rows, facts = _box_rows(impl, seed, device, "noise_independence", calls)
    tables = {}
    for name, (a, b) in box_pairs(rows, facts).items():
        for feature, bins in BOX_FEATURES.items():
            tables[f"{feature}: {name}"] = contingency(a.numpy(), b.numpy(), bins)
    return {"tables": tables, "alpha": FALSE_ALARM / len(tables), "bins": ["no", "yes"]}


# --- the checks ------------------------------------------------------------------------------


def check_label_flip_rate(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None):
    """On positive rows and on negative rows separately, the fraction of real rows whose
    class differs from their label is label_noise_ratio/2 * (1 - 1/num_classes) (two
    two-sided exact binomial tests, 5 classes, ratio 1); padding rows never change."""
    samples = label_flip_samples(impl, seed, device, calls)
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
    """Each contingency table passes its chi-square test of independence at ``alpha``. A
    table with an empty row or column (one side takes a single value: negative magnitudes
    drawn from U[1, 1.5) all fall in the lower half) says nothing about independence and
    is left out: that marginal departure is the magnitude, sign or flip-rate property's
    finding, reported once there. Only when every table is empty so is the property
    violated (nothing could be tested)."""
    judged = {name: (table, p) for name, (table, p) in tables.items() if p == p}  # nan: an empty row or column
    if not judged:
        first = next(iter(tables.values()))[0]
        raise PropertyViolation(
            f"{what} takes too few distinct values to test independence in any pair: {first.astype(int).tolist()}"
        )
    for name, (table, p_value) in judged.items():
        _require(p_value, alpha, f"{what} for {name} is dependent (contingency {table.astype(int).tolist()})")


def check_label_noise_independence(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None):
    """Whether a real row's label changed is independent between the same slot in
    consecutive groups, between a positive row and its negative twin (same slot, same
    group), between consecutive images at the same row, and of the sign and of the
    magnitude half of the row's own box noise (five 2x2 chi-square tests)."""
    samples = label_noise_tables(impl, seed, device, calls)
    _independent(samples["tables"], samples["alpha"], "label noise")


def check_replacement_uniform(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None):
    """Replaced labels are uniform over the other classes: with every label 0, 4
    classes and ratio 1, the changed rows' classes are uniform on 1..3 (chi-square; a
    class never drawn is a count of 0)."""
    samples = replacement_samples(impl, seed, device, calls)
    if sum(samples["counts"]) == 0:
        raise PropertyViolation("no label changed with label_noise_ratio = 1")
    _require(
        samples["p_value"],
        samples["alpha"],
        f"replacement classes 1..{REPLACEMENT_CLASSES - 1} were drawn {samples['counts']} times; expected uniform",
    )


def check_box_magnitudes(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None):
    """Corner displacements are |u| * d with |u| ~ U[0, 1) on positive rows and
    |u| - 1 ~ U[0, 1) on negative rows (two KS tests), and the signs of each of the four
    coordinates are fair (four exact binomial tests)."""
    samples = box_magnitude_samples(impl, seed, device, calls)
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


def check_noise_independence(impl, seed: int = DEFAULT_SEED, device: str = "cpu", calls: int | None = None):
    """Box noise is independent across coordinates, corners, groups, roles and images:
    within positive rows and within negative rows, the signed u for x1 vs y1 of a row,
    x1 vs x2 of a row (the two corners of one axis), a row vs the same slot in the next
    group, and image i vs image i+1 at the same row; and a positive row vs its negative
    twin (same slot, same group). For each pair, the signs and the magnitude halves
    (drawn magnitude >= 0.5) each pass a chi-square test of independence on their 2x2
    contingency table."""
    samples = box_noise_tables(impl, seed, device, calls)
    _independent(samples["tables"], samples["alpha"], "box noise")


# property name -> the helper returning the samples it tests
SAMPLES = {
    "label_flip_rate": label_flip_samples,
    "replacement_uniform": replacement_samples,
    "label_noise_independence": label_noise_tables,
    "box_magnitudes": box_magnitude_samples,
    "noise_independence": box_noise_tables,
}
