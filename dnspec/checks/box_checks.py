"""The box check: every decoded corner reachable from its ground truth by the noise the
contract allows, each kind of row judged on its own.

With corners c1 < c2 of the ground truth on one axis and d = w/2 * scale, a positive
row's corner moves by u*d with |u| < 1, a negative row's by 1 <= |u| < 2, then the clip to
[0, 1]; crossed corners collapse to a side of ~1e-5 upstream (see
:func:`box_noise_bounds`). The kinds of row (:data:`BOX_ROW_KINDS`) are judged separately,
so a bug confined to crossed corners is reported as exactly that.
"""

from __future__ import annotations

import torch

from dnspec.checks.invariants import gt_rows, layout_of, observe_space_at_scale_0, produced_outputs, returns_logits
from dnspec.checks.violations import fail, judge_separately
from dnspec.contract.boxes import inverse_sigmoid
from dnspec.contract.decode import corners, decode_boxes
from dnspec.contract.tolerances import decoded_box_tolerance

# sigmoid(inverse_sigmoid(0)) = 1e-5: the width or height a crossed box collapses to
COLLAPSED_SIDE = 2e-5


def _clipped_interval(lo, hi):
    return lo.clamp(0, 1), hi.clamp(0, 1)


def _inside(x, interval, tol):
    lo, hi = interval
    return (x >= lo - tol) & (x <= hi + tol)


def box_noise_bounds(case, layout, decoded, tol: float) -> dict[str, torch.Tensor]:
    """Per real row and axis, how the decoded box relates to its ground truth.

    With corners c1 < c2 of the ground truth on one axis and d = w/2 * scale (w the
    ground-truth side), the noised corner is v = c + s*u*d with s = +-1 and u in [0, 1)
    on positive rows, u in [1, 2) on negative rows; then clipped to [0, 1]. So a corner
    must lie in clip([c-d, c+d]) (positive) or clip([c-2d, c-d]) U clip([c+d, c+2d])
    (negative); clip is monotone, so clipping the interval ends is exact. Returns bool
    masks [bs, N, 2] (x axis, y axis):
      ``direct``     corner 1 lies in corner 1's set and corner 2 in corner 2's;
      ``collapsed``  RT-DETR's answer when the noised corners crossed (v2 < v1): the side
                     came back clamped to ~1e-5 by inverse_sigmoid and only the centre
                     (v1 + v2)/2 survives: the decoded side is <= 2e-5 and the centre lies
                     between the lowest and highest sums of the two sets, halved, for a
                     pair of intervals in which corner 2 can fall below corner 1;
      ``swapped``    the corners reordered (min, max) or the side flipped to |w|: corner 1
                     lies in corner 2's set and vice versa (what fixes the advisory);
      ``crossable``  the two corners' sets allow corner 2 to fall below corner 1.
    Every comparison allows ``tol``. Padding rows are True in direct.
    """
    _, gt_boxes = gt_rows(case, layout)
    gt_corners = corners(gt_boxes)
    got = corners(decoded)
    negative = layout.row_is_negative()[None, :].expand(layout.batch_size, -1)
    masks = {name: [] for name in ("direct", "collapsed", "swapped", "crossable")}
    for axis in (0, 1):
        c1, c2 = gt_corners[..., axis], gt_corners[..., axis + 2]
        d = (gt_boxes[..., axis + 2] / 2) * case.box_noise_scale
        sets1 = _role_intervals(negative, _far(c1, d), _near(c1, d))
        sets2 = _role_intervals(negative, _far(c2, d), _near(c2, d))
        x1, x2 = got[..., axis], got[..., axis + 2]

        def in1(x, sets1=sets1):
            return _inside(x, sets1[0], tol) | _inside(x, sets1[1], tol)

        def in2(x, sets2=sets2):
            return _inside(x, sets2[0], tol) | _inside(x, sets2[1], tol)

        centre = (x1 + x2) / 2
        crossed_centre = torch.zeros_like(x1, dtype=torch.bool)
        crossable = torch.zeros_like(crossed_centre)
        for a in sets1:
            for b in sets2:
                can_cross = b[0] <= a[1] + tol
                lo, hi = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
                crossable |= can_cross
                crossed_centre |= can_cross & (centre >= lo - tol) & (centre <= hi + tol)
        masks["direct"].append(in1(x1) & in2(x2))
        masks["collapsed"].append(crossed_centre & (x2 - x1 <= COLLAPSED_SIDE + tol))
        masks["swapped"].append(in1(x2) & in2(x1))
        masks["crossable"].append(crossable)
    out = {name: torch.stack(parts, dim=-1) for name, parts in masks.items()}
    out["direct"] |= ~layout.real_rows()[..., None]
    return out


def crossed_keeps_side(trial) -> bool:
    """Whether a crossed negative must keep |w| (|h|), as the corners reordered: for an
    implementation that fixes the advisories, and under a lineage contract whose crossed
    negatives keep their side (:mod:`dnspec.contract.lineages`: dfine, deim); otherwise it
    must collapse to side ~1e-5, as RT-DETR's does."""
    return trial.impl.fixes_advisories or trial.contract.crossed_keep_side


def box_noise_bounds_ok(case, layout, decoded, keeps_side: bool, tol: float) -> torch.Tensor:
    """bool [bs, N, 2]: the decoded box is reachable from its ground truth on that axis
    (see :func:`box_noise_bounds`): directly, or when its corners crossed, collapsed as
    upstream does (RT-DETR's contract) or swapped (``keeps_side``: an implementation that
    fixes the advisories, or a contract whose crossed negatives keep |w|)."""
    bounds = box_noise_bounds(case, layout, decoded, tol)
    crossed_ok = bounds["swapped"] if keeps_side else bounds["collapsed"]
    return bounds["direct"] | crossed_ok


def _near(c, d):
    """A positive row's corner ``c``: within ``d`` of it (the same interval twice)."""
    return [_clipped_interval(c - d, c + d)] * 2


def _far(c, d):
    """A negative row's corner ``c``: between ``d`` and ``2d`` from it, on either side."""
    return [_clipped_interval(c - 2 * d, c - d), _clipped_interval(c + d, c + 2 * d)]


def _role_intervals(negative, far, near):
    """The two allowed (lo, hi) intervals of a corner: ``far`` on negative rows, ``near``
    (the same interval twice) on positive rows."""
    return [
        (torch.where(negative, f_lo, n_lo), torch.where(negative, f_hi, n_hi))
        for (f_lo, f_hi), (n_lo, n_hi) in zip(far, near, strict=True)
    ]


# the kinds of row the box check judges separately, in the order a failing row is
# assigned to them
BOX_ROW_KINDS = {
    "padding": "padding rows",
    "crossed": "rows whose noised corners crossed",
    "pinned": "rows with a corner pinned at the border by the clip",
    "negative": "negative rows",
    "positive": "positive rows",
}


def check_boxes(trial):
    """Box queries. Padding rows hold the reference's padding value (0 in box space,
    inverse_sigmoid(0) = log(1e-5) in logit space). With box_noise_scale == 0 real rows
    equal the ground-truth box (box space upstream; sigmoid of the logits for an
    implementation that fixes the advisories, or one whose output at scale 0 is in logit
    space: :func:`~dnspec.checks.invariants.returns_logits`, the space recorded on the
    trial so that a builder mixing the two is reported). Otherwise every decoded corner lies in
    [0, 1] and is reachable from its ground-truth corner by positive noise |u| < 1 or
    negative noise 1 <= |u| < 2 of d = side/2 * scale, before the clip (see
    :func:`box_noise_bounds` for the exact form, crossed corners included).

    Each kind of row (:data:`BOX_ROW_KINDS`: padding; rows whose corners crossed; a
    corner pinned at the border; other negative rows; other positive rows) is judged on
    its own, so a bug confined to crossed corners is reported as exactly that while the
    other rows are still judged."""
    case, impl = trial.case, trial.impl
    layout = layout_of(case)
    if not layout.produces_output:
        return
    bbox = produced_outputs(trial)[1].detach().cpu()
    logit_space = returns_logits(case, bbox, impl.fixes_advisories)
    observe_space_at_scale_0(trial, case, bbox)
    tol = decoded_box_tolerance(case.dtype, logit_space)
    decoded = decode_boxes(bbox, logit_space)
    real = layout.real_rows()
    _, gt_boxes = gt_rows(case, layout)

    def padding():
        value = inverse_sigmoid(torch.zeros(4, dtype=bbox.dtype)) if logit_space else torch.zeros(4, dtype=bbox.dtype)
        wrong = (~real) & (bbox != value).any(-1)
        if bool(wrong.any()):
            i, r = (int(v) for v in wrong.nonzero()[0])
            fail(
                f"padding row {r} of image {i} holds {bbox[i, r].tolist()}, expected {value.tolist()}", "boxes.padding"
            )

    if case.box_noise_scale == 0:

        def ground_truth():
            if logit_space:
                wrong = real & ((decoded - gt_boxes).abs() > tol).any(-1)
            else:
                wrong = real & (bbox != gt_boxes.to(bbox.dtype)).any(-1)
            if bool(wrong.any()):
                i, r = (int(v) for v in wrong.nonzero()[0])
                space = "sigmoid of the logits" if logit_space else "box (box space, as upstream at scale 0)"
                fail(
                    f"box_noise_scale is 0 but real row {r} of image {i}: {space} is {decoded[i, r].tolist()}, "
                    f"expected the ground truth {gt_boxes[i, r].tolist()}",
                    "boxes.ground_truth_at_scale_0",
                )

        judge_separately(padding, ground_truth)
        return

    got = corners(decoded)
    outside = real[..., None] & ((got < -tol) | (got > 1 + tol))

    def inside_image():
        if bool(outside.any()):
            i, r, k = (int(v) for v in outside.nonzero()[0])
            fail(
                f"real row {r} of image {i}: corner {['x1', 'y1', 'x2', 'y2'][k]} = {float(got[i, r, k])} is outside [0, 1]",
                "boxes.outside_image",
            )

    bounds = box_noise_bounds(case, layout, decoded, tol)
    keeps_side = crossed_keeps_side(trial)
    crossed_ok = bounds["swapped"] if keeps_side else bounds["collapsed"]
    wrong = ~(bounds["direct"] | crossed_ok) & ~outside.view(*outside.shape[:2], 2, 2).any(-2)
    negative = layout.row_is_negative()[None, :, None].expand_as(wrong)
    crossed = (
        wrong
        & bounds["crossable"]
        & (bounds["swapped"] | bounds["collapsed"] | ((got[..., 2:] - got[..., :2]) <= COLLAPSED_SIDE + tol))
    )
    at_border = (got <= tol) | (got >= 1 - tol)
    pinned = wrong & ~crossed & at_border.view(*at_border.shape[:2], 2, 2).any(-2)
    kinds = {
        "crossed": crossed,
        "pinned": pinned,
        "negative": wrong & ~crossed & ~pinned & negative,
        "positive": wrong & ~crossed & ~pinned & ~negative,
    }

    def judge(kind):
        def part():
            cells = kinds[kind]
            if bool(cells.any()):
                i, r, axis = (int(v) for v in cells.nonzero()[0])
                fail(
                    _box_message(kind, case, layout, trial, got, gt_boxes, bounds, i, r, axis, int(cells.sum())),
                    f"boxes.{kind}",
                )

        return part

    judge_separately(padding, inside_image, *[judge(kind) for kind in kinds])


def _box_message(kind, case, layout, trial, got, gt_boxes, bounds, i, r, axis, count) -> str:
    role = "negative" if bool(layout.row_is_negative()[r]) else "positive"
    allowed = "1 <= |u| < 2" if role == "negative" else "|u| < 1"
    xy = "xy"[axis]
    a, b = float(got[i, r, axis]), float(got[i, r, axis + 2])
    g1, g2 = float(corners(gt_boxes)[i, r, axis]), float(corners(gt_boxes)[i, r, axis + 2])
    d = float(gt_boxes[i, r, axis + 2] / 2 * case.box_noise_scale)
    where = f"{role} row {r} of image {i}"
    more = f" ({count} such row-axes)"
    contract, fixes = trial.contract, trial.impl.fixes_advisories
    if kind == "crossed":
        side = "|w|" if axis == 0 else "|h|"
        if not crossed_keeps_side(trial) and bool(bounds["swapped"][i, r, axis]):
            return (
                f"{where}: its noised {xy}-corners crossed and came back reordered, spanning ({a:.6g}, {b:.6g}) with "
                f"side {side} = {b - a:.6g}: RT-DETR lets a crossed box collapse to side 1e-5 (inverse_sigmoid of a negative "
                f"width); reordering fixes advisory no_collapsed_boxes, so declare fixes_advisories if it is "
                f"deliberate, or verify it under a contract whose crossed negatives keep {side} "
                f"(--contract dfine or deim){more}"
            )
        if crossed_keeps_side(trial) and bool(bounds["collapsed"][i, r, axis]):
            why = (
                "the implementation declares fixes_advisories (crossed corners reordered)"
                if fixes and not contract.crossed_keep_side
                else f"under contract {contract.name} ({contract.builder}) crossed negatives keep {side}"
            )
            return f"{where}: its noised {xy}-corners crossed and the box collapsed to side {b - a:.6g} as RT-DETR's does, but {why}{more}"
        return (
            f"{where}: its noised {xy}-corners can cross, but the box comes back as ({a}, {b}), neither collapsed "
            f"to side 1e-5 around a reachable centre nor spanning the two corners{more}"
        )
    reason = (
        f"decoded {xy}-corners ({a}, {b}) are not reachable from the ground truth ({g1}, {g2}) by noise u*d with "
        f"{allowed}, d = side/2 * {case.box_noise_scale} = {d}, then a clip to [0, 1]"
    )
    if kind == "pinned":
        return f"{where}, a corner pinned at the border: {reason}{more}"
    return f"{where}: {reason}{more}"
