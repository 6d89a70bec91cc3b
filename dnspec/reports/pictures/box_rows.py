"""The box picture of one row: which row the box check flags, the numbers the picture
shows, and the drawing: the ground-truth box, the regions where positive and negative
corners may land after the clip, the returned box (and the reference's), and each axis
as number lines.
"""

from __future__ import annotations

import re

from dnspec.reports.pictures.figures import NEGATIVE, POSITIVE, REFERENCE, RETURNED, figure, png_bytes, short_name

ROW_PATTERN = re.compile(r"row (\d+) of image (\d+)")
AXIS_PATTERN = re.compile(r"\b([xy])-corners|corner ([xy])[12]\b")


def offending_box_row(case, outputs, impl, message: str = ""):
    """(image, row, axis) of the row the box check flags: the one its message names when
    it names one that exists, else the first real row (and axis) that is not reachable
    from its ground truth, else the first wrong padding row, else (0, 0, 0)."""
    import torch

    from dnspec.checks.box_checks import box_noise_bounds_ok
    from dnspec.checks.invariants import gt_rows, layout_of
    from dnspec.contract.boxes import inverse_sigmoid
    from dnspec.contract.decode import decode_boxes, expects_logit_space
    from dnspec.contract.tolerances import decoded_box_tolerance

    layout = layout_of(case)
    bbox = outputs[1].detach().cpu()
    found = ROW_PATTERN.search(message or "")
    axis_found = AXIS_PATTERN.search(message or "")
    axis = 0 if not axis_found else "xy".index(axis_found.group(1) or axis_found.group(2))
    if found:
        r, i = int(found.group(1)), int(found.group(2))
        if i < bbox.shape[0] and r < bbox.shape[1]:
            return i, r, axis
    logit_space = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
    tol = decoded_box_tolerance(case.dtype, logit_space)
    decoded = decode_boxes(bbox, logit_space)
    real = layout.real_rows()
    _, gt_boxes = gt_rows(case, layout)
    if case.box_noise_scale == 0:
        diff = (decoded - gt_boxes).abs()
        wrong = real[..., None] & (diff > tol)
        wrong = torch.stack([wrong[..., 0] | wrong[..., 2], wrong[..., 1] | wrong[..., 3]], dim=-1)
    else:
        wrong = real[..., None] & ~box_noise_bounds_ok(case, layout, decoded, impl.fixes_advisories, tol)
    if bool(wrong.any()):
        i, r, a = (int(v) for v in wrong.nonzero()[0])
        return i, r, a
    value = inverse_sigmoid(torch.zeros(4, dtype=bbox.dtype)) if logit_space else torch.zeros(4, dtype=bbox.dtype)
    padding = (~real) & (bbox != value).any(-1)
    if bool(padding.any()):
        i, r = (int(v) for v in padding.nonzero()[0])
        return i, r, axis
    return 0, 0, axis


def box_row_data(case, outputs, impl, i: int, r: int, reference=None) -> dict:
    """What the box picture of row ``r`` of image ``i`` shows, as numbers: the ground
    truth (cxcywh and corners), d per axis, the allowed intervals of each corner
    coordinate for positive and negative rows after the clip, and the returned corners."""
    from dnspec.checks.invariants import gt_rows, layout_of
    from dnspec.contract.decode import corners, decode_boxes, expects_logit_space
    from dnspec.contract.tolerances import decoded_box_tolerance

    layout = layout_of(case)
    logit_space = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
    decoded = decode_boxes(outputs[1].detach().cpu(), logit_space)
    _, gt_boxes = gt_rows(case, layout)
    gt = [float(v) for v in gt_boxes[i, r]]
    gt_corners = [float(v) for v in corners(gt_boxes[i, r])]
    got_corners = [float(v) for v in corners(decoded[i, r])]
    scale = float(case.box_noise_scale)

    def clip(lo, hi):
        return min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)

    intervals = {}
    for k, name in enumerate(("x1", "y1", "x2", "y2")):
        c = gt_corners[k]
        d = gt[2 + k % 2] / 2 * scale
        intervals[name] = {
            "positive": [clip(c - d, c + d)],
            "negative": [clip(c - 2 * d, c - d), clip(c + d, c + 2 * d)],
            "d": d,
        }
    real = bool(layout.real_rows()[i, r])
    negative = bool(layout.row_is_negative()[r])
    extra = {}
    if reference is not None:
        ref = decode_boxes(reference[1].detach().cpu(), expects_logit_space(case.box_noise_scale, False))[i, r]
        extra = {"reference": [float(v) for v in ref], "reference_corners": [float(v) for v in corners(ref)]}
    return {
        **extra,
        "image": i,
        "row": r,
        "slot": int(layout.row_slot()[r]),
        "group": int(layout.row_group()[r]),
        "role": ("negative" if negative else "positive") if real else "padding",
        "gt": gt,
        "gt_corners": gt_corners,
        "got_corners": got_corners,
        "got": [float(v) for v in decoded[i, r]],
        "intervals": intervals,
        "scale": scale,
        "logit_space": logit_space,
        "tol": decoded_box_tolerance(case.dtype, logit_space),
    }


def _inside(value: float, spans, tol: float = 1e-9) -> bool:
    return any(lo - tol <= value <= hi + tol for lo, hi in spans)


def draw_box_row(data: dict, *, axis: int = 0, impl_name: str = "the implementation", heading: str = "") -> bytes:
    """The ground-truth box, where each corner may land (positive and negative rows,
    after the clip), and the returned box, for one row; beside it, each axis as number
    lines."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    names = ("x1", "y1", "x2", "y2")
    spans = data["intervals"]
    role = data["role"]
    xs = [v for k in ("x1", "x2") for kind in ("positive", "negative") for span in spans[k][kind] for v in span]
    ys = [v for k in ("y1", "y2") for kind in ("positive", "negative") for span in spans[k][kind] for v in span]
    xs += [data["got_corners"][0], data["got_corners"][2], data["gt_corners"][0], data["gt_corners"][2]]
    ys += [data["got_corners"][1], data["got_corners"][3], data["gt_corners"][1], data["gt_corners"][3]]
    reference = data.get("reference_corners")
    if reference:
        xs += [reference[0], reference[2]]
        ys += [reference[1], reference[3]]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    span = max(hi_x - lo_x, hi_y - lo_y, 1e-3)
    margin = span * 0.12
    cx, cy = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
    view = (cx - span / 2 - margin, cx + span / 2 + margin, cy - span / 2 - margin, cy + span / 2 + margin)

    fig = figure(11, 6.4)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.05, 1.2])
    ax = fig.add_subplot(grid[:, 0])
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[3], view[2])  # y grows downwards, as in an image
    ax.set_aspect("equal")
    ax.add_patch(
        Rectangle(
            (view[0], view[2]), view[1] - view[0], view[3] - view[2], facecolor="#f1f3f5", edgecolor="none", zorder=0
        )
    )
    ax.add_patch(Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="#adb5bd", ls="--", lw=1, zorder=0.5))
    for corner, (kx, ky) in enumerate((("x1", "y1"), ("x2", "y2"))):
        for kind, colour in (("positive", POSITIVE), ("negative", NEGATIVE)):
            mine = kind == role
            for x_lo, x_hi in spans[kx][kind]:
                for y_lo, y_hi in spans[ky][kind]:
                    ax.add_patch(
                        Rectangle(
                            (x_lo, y_lo),
                            x_hi - x_lo,
                            y_hi - y_lo,
                            facecolor=colour,
                            alpha=0.32 if mine else 0.12,
                            edgecolor=colour if mine else "none",
                            lw=0.8,
                            zorder=1,
                        )
                    )
                    if mine and x_hi > x_lo and y_hi > y_lo:
                        ax.text(x_lo, y_lo, f" c{corner + 1}", ha="left", va="top", fontsize=8, color=colour, zorder=2)
    g = data["gt_corners"]
    ax.add_patch(Rectangle((g[0], g[1]), g[2] - g[0], g[3] - g[1], fill=False, edgecolor="black", lw=2, zorder=3))
    if reference:
        ax.add_patch(
            Rectangle(
                (reference[0], reference[1]),
                reference[2] - reference[0],
                reference[3] - reference[1],
                fill=False,
                edgecolor=REFERENCE,
                lw=2,
                zorder=3.5,
            )
        )
    b = data["got_corners"]
    ax.add_patch(
        Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, edgecolor=RETURNED, lw=2, ls="--", zorder=4)
    )
    tol = data.get("tol", 1e-9)
    inside = {
        k: role != "padding" and _inside(data["got_corners"][n], spans[k][role], tol) for n, k in enumerate(names)
    }
    twin = {"x1": "x2", "x2": "x1", "y1": "y2", "y2": "y1"}
    swapped = {
        k: role != "padding" and not inside[k] and _inside(data["got_corners"][n], spans[twin[k]][role], tol)
        for n, k in enumerate(names)
    }
    for k, (px, py, marker) in enumerate(((b[0], b[1], "o"), (b[2], b[3], "s"))):
        ok = inside[names[2 * k]] and inside[names[2 * k + 1]]
        ax.plot([px], [py], marker=marker, ms=8, color=POSITIVE if ok else RETURNED, mec="black", zorder=5)
    ax.set_title(
        f"image {data['image']}, row {data['row']} ({role}, group {data['group']}, gt box {data['slot']})", fontsize=10
    )
    ax.tick_params(labelsize=8)

    for k, axis_name in enumerate("xy"):
        line = fig.add_subplot(grid[k, 1])
        first, second = f"{axis_name}1", f"{axis_name}2"
        levels = [(first, "positive"), (first, "negative"), (second, "positive"), (second, "negative")]
        for level, (corner, kind) in enumerate(levels):
            colour = POSITIVE if kind == "positive" else NEGATIVE
            mine = kind == role
            for lo, hi in spans[corner][kind]:
                width = max(hi - lo, span * 0.004)
                line.broken_barh(
                    [(lo, width)],
                    (level - 0.32, 0.64),
                    facecolors=colour,
                    alpha=0.55 if mine else 0.2,
                    edgecolor=colour if mine else "none",
                )
        line.set_yticks(range(4), [f"{c} {kind}" for c, kind in levels], fontsize=8)
        line.set_ylim(3.7, -0.7)
        line.set_xlim(view[0] if axis_name == "x" else view[2], view[1] if axis_name == "x" else view[3])
        for border in (0.0, 1.0):
            line.axvline(border, color="#adb5bd", ls=":", lw=1)
        gt_1, gt_2 = data["gt_corners"][k], data["gt_corners"][k + 2]
        got_1, got_2 = data["got_corners"][k], data["got_corners"][k + 2]
        for value in (gt_1, gt_2):
            line.axvline(value, color="black", lw=1.2)
        if reference:
            line.plot([reference[k]] * 2, [-0.45, 1.45], color=REFERENCE, lw=1.5)
            line.plot([reference[k + 2]] * 2, [1.55, 3.45], color=REFERENCE, lw=1.5)
        line.plot([got_1, got_1], [-0.45, 1.45], color=RETURNED, lw=2)
        line.plot([got_2, got_2], [1.55, 3.45], color=RETURNED, lw=2, ls="--")
        line.plot([got_1], [0.5], marker="o", ms=7, color=POSITIVE if inside[first] else RETURNED, mec="black")
        line.plot([got_2], [2.5], marker="s", ms=7, color=POSITIVE if inside[second] else RETURNED, mec="black")
        flagged = " (the check flags this axis)" if k == axis else ""
        d = spans[first]["d"]

        def where(c, v):
            if inside[c]:
                return f"{c} = {v:.5g} in its region"
            if swapped[c]:
                return f"{c} = {v:.5g} OUTSIDE its region (in {twin[c]}'s: swapped)"
            return f"{c} = {v:.5g} OUTSIDE its region"

        line.set_title(
            f"{axis_name} axis{flagged}: d = side/2 * scale = {d:.4g}\n"
            f"returned {where(first, got_1)}\nreturned {where(second, got_2)}",
            fontsize=9,
            color=RETURNED if k == axis else "black",
        )
        line.tick_params(axis="x", labelsize=8)
    handles = [
        Line2D([], [], color="black", lw=2, label="ground-truth box"),
        Line2D([], [], color=RETURNED, lw=2, ls="--", label=f"returned box ({short_name(impl_name, 40)})"),
        *([Line2D([], [], color=REFERENCE, lw=2, label="the reference's box, same call")] if reference else []),
        Patch(facecolor=POSITIVE, alpha=0.45, label="positive rows: corner within +-d"),
        Patch(facecolor=NEGATIVE, alpha=0.45, label="negative rows: corner within d..2d"),
        Line2D([], [], color="#adb5bd", ls="--", label="image border (clip)"),
        Line2D([], [], marker="o", color="w", mfc="white", mec="black", label="returned corner c1 = (x1, y1)"),
        Line2D([], [], marker="s", color="w", mfc="white", mec="black", label="returned corner c2 = (x2, y2)"),
        Patch(facecolor=RETURNED, label="red: outside its region"),
        Patch(facecolor=POSITIVE, label="green: inside"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    space = "logits, decoded by sigmoid" if data["logit_space"] else "box space"
    fig.suptitle(
        heading
        or f"boxes: box_noise_scale {data['scale']:g}, output in {space}; "
        f"regions after the clip to [0, 1] (this row's role drawn strong)",
        fontsize=10,
    )
    return png_bytes(fig)
