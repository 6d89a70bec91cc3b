"""Pictures of what failed, drawn with matplotlib (the ``plot`` extra).

A failing attention mask or box bound is easier to see than to read. For each
divergence of a verify run, :func:`divergence_pictures` calls the live implementation
again on the divergence's minimal example (``divergence.example_case``, under a time
limit) and draws what the property saw:

``mask``       the expected attention mask (:mod:`dnspec.layout`) and the returned one side
               by side, the wrong cells highlighted, group boundaries drawn, large masks
               down-sampled in blocks;
``boxes``      for the offending row: the ground-truth box, the regions where positive and
               negative corners may land after the clip, and the returned box;
``positive``   expected and returned positive rows per image, as strips;
``classes``    expected and returned class per row, as strips;
``stats``      the observed samples of a statistical property (empirical CDF, histogram or
               contingency residuals) against the expected distribution, with p-values;
``inputs``     the minimal example's ground-truth boxes, for a crash, a hang or a
               property that has no picture of its own.

Nothing here raises into a report: a picture that cannot be drawn becomes a
:class:`Picture` with a ``note`` saying why. matplotlib is imported only when a picture
is drawn (never when ``dnspec verify`` starts), through the Agg canvas of
``matplotlib.figure.Figure`` (no pyplot, no GUI backend, no global state).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field

PLOT_EXTRA = "pip install 'dnspec[plot]'"
MAX_MASK_CELLS = 160  # a mask side above this is drawn in blocks
MAX_STRIP_CELLS = 400  # a strip longer than this is drawn in blocks
MAX_STRIP_IMAGES = 6

# colours (also used by the HTML page's legend)
ALLOWED = "#ffffff"
BLOCKED = "#343a40"
LEAK = "#e03131"  # returned allows, must block
OVER = "#f08c00"  # returned blocks, must allow
GROUP_LINE = "#339af0"
SPLIT_LINE = "#e8590c"
POSITIVE = "#2f9e44"
NEGATIVE = "#7048e8"
RETURNED = "#e03131"
REFERENCE = "#1971c2"


@dataclass
class Picture:
    """One picture of a divergence: a PNG, or a note saying why there is none."""

    title: str
    caption: str = ""
    png: bytes | None = None
    note: str = ""


@dataclass
class Pictures:
    """The pictures of one run, by divergence number; ``unavailable`` says why there are
    none at all (matplotlib missing)."""

    by_divergence: dict = field(default_factory=dict)
    unavailable: str = ""


def plot_problem() -> str:
    """'' when matplotlib can be imported, else one line naming the extra that adds it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"matplotlib is not installed ({PLOT_EXTRA} adds it)"
    return ""


def _short(name: str, limit: int = 60) -> str:
    """An implementation's name short enough for a title: a file SPEC by its file name."""
    if ":" in name and ("/" in name or "\\" in name):
        path, _, attr = name.rpartition(":")
        name = f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}:{attr}"
    return name if len(name) <= limit else name[: limit - 3] + "..."


# --- figures ------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _rgb(colour: str):
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def _blocks(array, block: int, reduce: str):
    """``array`` [H, W] reduced over ``block`` x ``block`` tiles ('mean' over the real
    cells, or 'any'), the last tiles padded."""
    import numpy as np

    h, w = array.shape
    hb, wb = math.ceil(h / block), math.ceil(w / block)
    padded = np.zeros((hb * block, wb * block), dtype=float)
    valid = np.zeros_like(padded)
    padded[:h, :w] = array
    valid[:h, :w] = 1
    tiles = padded.reshape(hb, block, wb, block)
    if reduce == "any":
        return tiles.max(axis=(1, 3)) > 0
    return tiles.sum(axis=(1, 3)) / np.maximum(valid.reshape(hb, block, wb, block).sum(axis=(1, 3)), 1)


# --- attention mask --------------------------------------------------------------------------


def mask_image(mask, expected=None, block: int = 1):
    """RGB [H, W, 3] of a bool mask (True = blocked, dark); with ``expected``, the cells
    that differ in red (returned allows what must be blocked) or orange (returned blocks
    what must be allowed). Blocks: the share of blocked cells as grey, any wrong cell wins."""
    import numpy as np

    mask = np.asarray(mask, dtype=bool)
    blocked = _blocks(mask, block, "mean") if block > 1 else mask.astype(float)
    white, dark = np.array(_rgb(ALLOWED)), np.array(_rgb(BLOCKED))
    rgb = white[None, None, :] * (1 - blocked[..., None]) + dark[None, None, :] * blocked[..., None]
    if expected is not None:
        expected = np.asarray(expected, dtype=bool)
        leak, over = expected & ~mask, ~expected & mask
        if block > 1:
            leak, over = _blocks(leak, block, "any"), _blocks(over, block, "any")
        rgb[over] = _rgb(OVER)
        rgb[leak] = _rgb(LEAK)
    return rgb


def _draw_mask_axes(ax, mask, expected, num_dn: int, group_width: int, title: str, block: int):
    size_h, size_w = mask.shape
    rgb = mask_image(mask, expected, block)
    ax.imshow(rgb, extent=(0, rgb.shape[1] * block, rgb.shape[0] * block, 0), interpolation="nearest", aspect="equal")
    ax.set_xlim(0, size_w)
    ax.set_ylim(size_h, 0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("key j (attended to)", fontsize=9)
    ax.set_ylabel("query i", fontsize=9)
    size = min(size_h, size_w)
    if size <= 24:  # small enough to see every cell
        for k in range(1, size):
            ax.axhline(k, color="#ced4da", lw=0.5)
            ax.axvline(k, color="#ced4da", lw=0.5)
    groups = num_dn // group_width if group_width else 0
    if group_width and groups <= 64:  # within the dn block, where the groups are
        edges = [k * group_width for k in range(1, groups)]
        width = 1.2 if groups <= 8 else 0.6
        ax.hlines(edges, 0, min(num_dn, size_w), color=GROUP_LINE, lw=width)
        ax.vlines(edges, 0, min(num_dn, size_h), color=GROUP_LINE, lw=width)
    if 0 < num_dn < size:
        ax.axhline(num_dn, color=SPLIT_LINE, lw=1.8)
        ax.axvline(num_dn, color=SPLIT_LINE, lw=1.8)
    ticks, labels = [], []
    if group_width and groups <= 12:
        for k in range(groups):
            ticks.append((k + 0.5) * group_width)
            labels.append(f"g{k}")
    if num_dn < size:
        ticks.append((num_dn + size) / 2)
        labels.append("obj")
    if ticks:
        ax.set_xticks(ticks, labels, fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
    ax.tick_params(length=0)


def draw_mask(expected, got, *, num_dn: int, group_width: int, impl_name: str = "the implementation", heading: str = "") -> bytes:
    """The expected and returned masks side by side (bool arrays [S, S]; True = may not
    attend), the wrong cells highlighted in the returned one."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    expected, got = np.asarray(expected, dtype=bool), np.asarray(got, dtype=bool)
    same_shape = expected.shape == got.shape
    side = max(expected.shape + got.shape)
    block = max(1, math.ceil(side / MAX_MASK_CELLS))
    fig = _figure(10, 5.8)
    axes = fig.subplots(1, 2)
    _draw_mask_axes(axes[0], expected, None, num_dn, group_width, f"expected {list(expected.shape)} (dnspec.layout)", block)
    wrong = int((expected != got).sum()) if same_shape else None
    title = f"returned {list(got.shape)}"
    if wrong is not None:
        title += f": {wrong} wrong cell{'s' if wrong != 1 else ''} of {got.size}"
    _draw_mask_axes(axes[1], got, expected if same_shape else None, num_dn, group_width, title, block)
    handles = [Patch(facecolor=ALLOWED, edgecolor="#868e96", label="may attend"),
               Patch(facecolor=BLOCKED, label="may not attend")]
    if same_shape:
        handles += [Patch(facecolor=LEAK, label="returned allows, must block"),
                    Patch(facecolor=OVER, label="returned blocks, must allow")]
    handles += [Line2D([], [], color=GROUP_LINE, lw=1, label=f"dn group boundary (every {group_width} rows)"),
                Line2D([], [], color=SPLIT_LINE, lw=2, label=f"dn rows | object queries (N = {num_dn})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    text = (heading or "attention mask") + f", returned by {_short(impl_name)}"
    if block > 1:
        text += f" (each pixel a {block}x{block} block: grey = share blocked; red or orange if any cell in it is wrong)"
    if not same_shape:
        text += f": shapes differ, {list(got.shape)} returned, {list(expected.shape)} expected"
    fig.suptitle(text, fontsize=10)
    return png_bytes(fig)


# --- boxes ----------------------------------------------------------------------------------


ROW_PATTERN = re.compile(r"row (\d+) of image (\d+)")
AXIS_PATTERN = re.compile(r"\b([xy])-corners|corner ([xy])[12]\b")


def offending_box_row(case, outputs, impl, message: str = ""):
    """(image, row, axis) of the row the box check flags: the one its message names when
    it names one that exists, else the first real row (and axis) that is not reachable
    from its ground truth, else the first wrong padding row, else (0, 0, 0)."""
    import torch

    from dnspec.boxes import inverse_sigmoid
    from dnspec.decode import decode_boxes, expects_logit_space
    from dnspec.box_checks import box_noise_bounds_ok
    from dnspec.invariants import gt_rows, layout_of
    from dnspec.tolerances import decoded_box_tolerance

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
    from dnspec.decode import corners, decode_boxes, expects_logit_space
    from dnspec.invariants import gt_rows, layout_of
    from dnspec.tolerances import decoded_box_tolerance

    layout = layout_of(case)
    logit_space = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
    decoded = decode_boxes(outputs[1].detach().cpu(), logit_space)
    _, gt_boxes = gt_rows(case, layout)
    gt = [float(v) for v in gt_boxes[i, r]]
    gt_corners = [float(v) for v in corners(gt_boxes[i, r])]
    got_corners = [float(v) for v in corners(decoded[i, r])]
    scale = float(case.box_noise_scale)
    clip = lambda lo, hi: (min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0))
    intervals = {}
    for k, name in enumerate(("x1", "y1", "x2", "y2")):
        c = gt_corners[k]
        d = gt[2 + k % 2] / 2 * scale
        intervals[name] = {"positive": [clip(c - d, c + d)], "negative": [clip(c - 2 * d, c - d), clip(c + d, c + 2 * d)], "d": d}
    real = bool(layout.real_rows()[i, r])
    negative = bool(layout.row_is_negative()[r])
    extra = {}
    if reference is not None:
        ref = decode_boxes(reference[1].detach().cpu(), expects_logit_space(case.box_noise_scale, False))[i, r]
        extra = {"reference": [float(v) for v in ref], "reference_corners": [float(v) for v in corners(ref)]}
    return {**extra,
        "image": i, "row": r, "slot": int(layout.row_slot()[r]), "group": int(layout.row_group()[r]),
        "role": ("negative" if negative else "positive") if real else "padding",
        "gt": gt, "gt_corners": gt_corners, "got_corners": got_corners, "got": [float(v) for v in decoded[i, r]],
        "intervals": intervals, "scale": scale, "logit_space": logit_space,
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

    fig = _figure(11, 6.4)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.05, 1.2])
    ax = fig.add_subplot(grid[:, 0])
    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[3], view[2])  # y grows downwards, as in an image
    ax.set_aspect("equal")
    ax.add_patch(Rectangle((view[0], view[2]), view[1] - view[0], view[3] - view[2], facecolor="#f1f3f5", edgecolor="none", zorder=0))
    ax.add_patch(Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="#adb5bd", ls="--", lw=1, zorder=0.5))
    for corner, (kx, ky) in enumerate((("x1", "y1"), ("x2", "y2"))):
        for kind, colour in (("positive", POSITIVE), ("negative", NEGATIVE)):
            mine = kind == role
            for x_lo, x_hi in spans[kx][kind]:
                for y_lo, y_hi in spans[ky][kind]:
                    ax.add_patch(Rectangle((x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, facecolor=colour,
                                           alpha=0.32 if mine else 0.12, edgecolor=colour if mine else "none", lw=0.8, zorder=1))
                    if mine and x_hi > x_lo and y_hi > y_lo:
                        ax.text(x_lo, y_lo, f" c{corner + 1}", ha="left", va="top", fontsize=8, color=colour, zorder=2)
    g = data["gt_corners"]
    ax.add_patch(Rectangle((g[0], g[1]), g[2] - g[0], g[3] - g[1], fill=False, edgecolor="black", lw=2, zorder=3))
    if reference:
        ax.add_patch(Rectangle((reference[0], reference[1]), reference[2] - reference[0], reference[3] - reference[1],
                               fill=False, edgecolor=REFERENCE, lw=2, zorder=3.5))
    b = data["got_corners"]
    ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, edgecolor=RETURNED, lw=2, ls="--", zorder=4))
    tol = data.get("tol", 1e-9)
    inside = {k: role != "padding" and _inside(data["got_corners"][n], spans[k][role], tol) for n, k in enumerate(names)}
    twin = {"x1": "x2", "x2": "x1", "y1": "y2", "y2": "y1"}
    swapped = {k: role != "padding" and not inside[k] and _inside(data["got_corners"][n], spans[twin[k]][role], tol)
               for n, k in enumerate(names)}
    for k, (px, py, marker) in enumerate(((b[0], b[1], "o"), (b[2], b[3], "s"))):
        ok = inside[names[2 * k]] and inside[names[2 * k + 1]]
        ax.plot([px], [py], marker=marker, ms=8, color=POSITIVE if ok else RETURNED, mec="black", zorder=5)
    ax.set_title(f"image {data['image']}, row {data['row']} ({role}, group {data['group']}, gt box {data['slot']})", fontsize=10)
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
                line.broken_barh([(lo, width)], (level - 0.32, 0.64), facecolors=colour, alpha=0.55 if mine else 0.2,
                                 edgecolor=colour if mine else "none")
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
        where = lambda c, v: f"{c} = {v:.5g} " + ("in its region" if inside[c] else
                                                  f"OUTSIDE its region (in {twin[c]}'s: swapped)" if swapped[c] else "OUTSIDE its region")
        line.set_title(f"{axis_name} axis{flagged}: d = side/2 * scale = {d:.4g}\n"
                       f"returned {where(first, got_1)}\nreturned {where(second, got_2)}", fontsize=9,
                       color=RETURNED if k == axis else "black")
        line.tick_params(axis="x", labelsize=8)
    handles = [Line2D([], [], color="black", lw=2, label="ground-truth box"),
               Line2D([], [], color=RETURNED, lw=2, ls="--", label=f"returned box ({_short(impl_name, 40)})"),
               *([Line2D([], [], color=REFERENCE, lw=2, label="the reference's box, same call")] if reference else []),
               Patch(facecolor=POSITIVE, alpha=0.45, label="positive rows: corner within +-d"),
               Patch(facecolor=NEGATIVE, alpha=0.45, label="negative rows: corner within d..2d"),
               Line2D([], [], color="#adb5bd", ls="--", label="image border (clip)"),
               Line2D([], [], marker="o", color="w", mfc="white", mec="black", label="returned corner c1 = (x1, y1)"),
               Line2D([], [], marker="s", color="w", mfc="white", mec="black", label="returned corner c2 = (x2, y2)"),
               Patch(facecolor=RETURNED, label="red: outside its region"), Patch(facecolor=POSITIVE, label="green: inside")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    space = "logits, decoded by sigmoid" if data["logit_space"] else "box space"
    fig.suptitle(heading or f"boxes: box_noise_scale {data['scale']:g}, output in {space}; "
                 f"regions after the clip to [0, 1] (this row's role drawn strong)", fontsize=10)
    return png_bytes(fig)


# --- strips: positive indices and class queries ----------------------------------------------


def positive_strip_data(case, outputs, reference=None) -> dict:
    """Per image, the expected positive rows (the layout's, or the reference's outputs')
    and the returned ones (None: unreadable)."""
    import torch

    from dnspec.invariants import layout_of

    layout = layout_of(case)
    meta = outputs[3] if isinstance(outputs[3], dict) else {}
    returned = meta.get("dn_positive_idx")
    expected_rows = reference[3]["dn_positive_idx"] if reference is not None else layout.positive_idx()
    expected = [set(int(v) for v in torch.as_tensor(rows).flatten().tolist()) for rows in expected_rows]
    got = []
    for i in range(case.batch_size):
        try:
            got.append([int(v) for v in torch.as_tensor(returned[i]).flatten().tolist()])
        except Exception:  # not one list per image: shown as unreadable
            got.append(None)
    return {"expected": expected, "got": got, "num_dn": layout.num_dn_rows, "group_width": 2 * layout.max_gt,
            "real": layout.real_rows().tolist(), "negative": layout.row_is_negative().tolist(), "counts": list(case.counts)}


def class_strip_data(case, outputs, reference=None) -> dict:
    """Per image and row, the class the row must carry when no label noise applies (its
    box's label; padding: num_classes) or, with ``reference``, the class the reference's
    row carries; the class it carries (nearest embedding row), whether it is an exact
    embedding row, and which rows break a rule of the class check (or differ from the
    reference's)."""
    from dnspec.decode import recover_labels
    from dnspec.invariants import gt_rows, layout_of

    layout = layout_of(case)
    weight = case.class_embed().weight.detach()
    labels, exact = recover_labels(outputs[0].detach(), weight)
    labels, exact = labels.cpu(), exact.cpu()
    real = layout.real_rows()
    gt_labels, _ = gt_rows(case, layout)
    bad = ~exact | ((~real) & (labels != case.num_classes)) | (real & (labels >= case.num_classes))
    if case.label_noise_ratio == 0:
        bad |= real & (labels != gt_labels)
    if reference is not None:
        gt_labels = recover_labels(reference[0].detach(), weight)[0].cpu()
        bad |= labels != gt_labels
    return {"expected": gt_labels.tolist(), "got": labels.tolist(), "exact": exact.tolist(), "bad": bad.tolist(),
            "changed": (real & (labels != gt_labels)).tolist(), "num_classes": case.num_classes,
            "group_width": 2 * layout.max_gt, "num_dn": layout.num_dn_rows, "ratio": case.label_noise_ratio}


def _strip_images(bad_rows: list[bool]) -> list[int]:
    """The images to draw: those with a problem first, at most MAX_STRIP_IMAGES."""
    order = [i for i, bad in enumerate(bad_rows) if bad] + [i for i, bad in enumerate(bad_rows) if not bad]
    return order[:MAX_STRIP_IMAGES]


def _strip_axes(ax, rows, labels, group_width: float, title: str):
    """Strips (RGB rows of equal length) one above the other, group boundaries every
    ``group_width`` cells."""
    import numpy as np

    length = len(rows[0])
    ax.imshow(np.asarray(rows), aspect="auto", interpolation="nearest", extent=(0, length, len(rows), 0))
    ax.set_yticks([k + 0.5 for k in range(len(rows))], labels, fontsize=8)
    ax.set_xlim(0, length)
    if group_width and length / group_width <= 64:
        k = 1
        while k * group_width < length - 1e-9:
            ax.axvline(k * group_width, color=GROUP_LINE, lw=2.5)
            k += 1
    if length <= 60:
        for k in range(1, length):
            ax.axvline(k, color="white", lw=0.5)
    if length <= 40:
        ax.set_xticks([k + 0.5 for k in range(length)], [str(k) for k in range(length)])
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k in range(1, len(rows)):
        ax.axhline(k, color="white", lw=2)
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=8)


# strip cell categories, in the order a block of cells shows them (the highest wins)
PAD, NEG, BLANK, POS, MISS, EXTRA = range(6)
STRIP_COLOURS = {PAD: "#fff3bf", NEG: "#dee2e6", BLANK: "#ffffff", POS: POSITIVE, MISS: "#ffc9c9", EXTRA: RETURNED}


def _category_rgb(categories, block: int):
    import numpy as np

    categories = np.asarray(categories)
    if block > 1:
        padded = np.full(math.ceil(len(categories) / block) * block, PAD)
        padded[: len(categories)] = categories
        categories = padded.reshape(-1, block).max(axis=1)
    table = np.array([_rgb(STRIP_COLOURS[k]) for k in range(len(STRIP_COLOURS))])
    return table[categories]


def draw_positive_strips(data: dict, *, impl_name: str = "the implementation", heading: str = "") -> bytes:
    """Per image, two strips over the dn rows: expected positive rows and the returned
    list (green: right; red: listed but not a positive row of a real box; pink: a
    positive row missing from the list). Negative rows shaded grey, padding rows beige."""
    from matplotlib.patches import Patch

    num_dn = data["num_dn"]
    bad = [got is None or set(got) != exp or len(got) != len(exp) for exp, got in zip(data["expected"], data["got"])]
    images = _strip_images(bad)
    block = max(1, math.ceil(num_dn / MAX_STRIP_CELLS))
    fig = _figure(11, 1.1 + 1.0 * len(images))
    axes = fig.subplots(len(images), 1, squeeze=False)[:, 0]
    for ax, i in zip(axes, images):
        background = [PAD if not data["real"][i][r] else NEG if data["negative"][r] else BLANK for r in range(num_dn)]
        expected_row = list(background)
        for r in data["expected"][i]:
            expected_row[r] = POS
        got = data["got"][i]
        returned_row = list(background)
        title = f"image {i} ({data['counts'][i]} box{'es' if data['counts'][i] != 1 else ''})"
        if got is None:
            title += ": dn_positive_idx has no readable list for this image"
        else:
            for r in data["expected"][i] - set(got):
                returned_row[r] = MISS
            for r in got:
                if 0 <= r < num_dn:
                    returned_row[r] = POS if r in data["expected"][i] else EXTRA
            extra = [r for r in got if not 0 <= r < num_dn]
            title += f": returned {len(got)} rows, expected {len(data['expected'][i])}"
            if extra:
                title += f"; {len(extra)} outside the {num_dn} dn rows (e.g. {extra[0]})"
            if got != sorted(got):
                title += "; not ascending"
        rows = [_category_rgb(expected_row, block), _category_rgb(returned_row, block)]
        _strip_axes(ax, rows, ["expected", "returned"], data["group_width"] / block, title)
    axes[-1].set_xlabel("dn row" if block == 1 else f"dn rows, {block} per cell", fontsize=9)
    handles = [Patch(facecolor=POSITIVE, label="positive row listed"), Patch(facecolor=RETURNED, label="listed, but not a positive row"),
               Patch(facecolor="#ffc9c9", label="positive row missing"), Patch(facecolor="#dee2e6", label="negative row"),
               Patch(facecolor="#fff3bf", label="padding row"), Patch(facecolor=GROUP_LINE, label="group boundary")]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle(heading or f"dn_positive_idx, expected (dnspec.layout) vs returned by {_short(impl_name)}", fontsize=10)
    return png_bytes(fig)


def draw_class_strips(data: dict, *, impl_name: str = "the implementation", heading: str = "") -> bytes:
    """Per image, two strips over the dn rows: the class each row must carry without
    label noise (its box's label; padding: num_classes) and the class it carries; x marks
    a row breaking a rule of the class check, a dot a change label noise allows."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    num_classes = data["num_classes"]
    images = _strip_images([any(row) for row in data["bad"]])
    num_dn = data["num_dn"]
    block = max(1, math.ceil(num_dn / MAX_STRIP_CELLS))
    fig = _figure(11, 1.2 + (1.05 if num_dn <= 40 else 1.4) * len(images))
    axes = fig.subplots(len(images), 1, squeeze=False)[:, 0]
    palette = colormaps["tab20"]

    def colour(c):
        if c == num_classes:
            return np.array(_rgb("#e9ecef"))
        if c > num_classes or c < 0:
            return np.array(_rgb(RETURNED))
        return np.array(palette(c % 20)[:3])

    for ax, i in zip(axes, images):
        bad = data["bad"][i]
        rows = []
        for values in (data["expected"][i], data["got"][i]):
            rows.append(np.array([colour(values[r]) for r in range(0, num_dn, block)]))
        labels = ["expected", "returned"]
        outline = num_dn <= 40  # few cells: outline the bad ones; many: a third strip marks them
        if not outline:
            marks = np.array([any(bad[r:r + block]) for r in range(0, num_dn, block)])
            rows.append(np.where(marks[:, None], 0.0, 1.0) * np.ones((len(marks), 3)))
            labels.append("breaks a rule")
        count = sum(bad)
        title = f"image {i}: {count} row{'s break' if count != 1 else ' breaks'} a rule" if count else f"image {i}"
        _strip_axes(ax, rows, labels, data["group_width"] / block, title)
        for r in range(num_dn):
            if bad[r] and outline:
                ax.add_patch(Rectangle((r // block + 0.04, 1.06), 0.92, 0.88, fill=False, edgecolor="black", lw=2.5))
            elif data["changed"][i][r] and block == 1:
                ax.plot([r + 0.85], [1.8], marker="o", color="black", ms=3)
            if num_dn <= 40:
                for level, values in ((0, data["expected"][i]), (1, data["got"][i])):
                    ax.text(r + 0.5, level + 0.5, str(values[r]), ha="center", va="center", fontsize=8)
    axes[-1].set_xlabel("dn row" if block == 1 else f"dn rows (every {block}th drawn)", fontsize=9)
    handles = [Patch(facecolor="white" if num_dn <= 40 else "black", edgecolor="black", lw=2.5, label="breaks a rule (not an embedding row, padding not num_classes, out of range, changed at ratio 0, or unlike the reference)"),
               Line2D([], [], marker="o", color="black", ls="", ms=3, label="changed by label noise (allowed)"),
               Line2D([], [], marker="s", color="#e9ecef", ls="", ms=9, label=f"class num_classes = {num_classes} (padding)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(heading or f"class queries (colour = class), label_noise_ratio {data['ratio']:g}: expected vs returned by {_short(impl_name)}", fontsize=10)
    return png_bytes(fig)


# --- statistics -----------------------------------------------------------------------------------


def _p_text(p: float, alpha: float) -> str:
    verdict = "FAILS" if not (p >= alpha) else "holds"
    return f"p = {p:.3g} ({verdict} at alpha {alpha:.2g})"


def draw_statistics(name: str, samples: dict, *, impl_name: str = "the implementation") -> bytes:
    """The observed samples of statistical property ``name`` against what is expected."""
    import numpy as np

    alpha = samples["alpha"]
    if name == "box_magnitudes":
        fig = _figure(12, 4.4)
        axes = fig.subplots(1, 3)
        for ax, role in zip(axes[:2], ("positive", "negative")):
            entry = samples["magnitudes"][role]
            values = np.sort(entry["values"])
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", color=RETURNED, lw=1.5, label="observed (empirical CDF)")
            ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="expected U[0, 1)")
            ax.set_xlim(min(0, values.min()), max(1, values.max()))
            ax.set_ylim(0, 1)
            shift = " - 1" if role == "negative" else ""
            ax.set_title(f"{role} rows: |u|{shift}, n = {len(values)}\nKS {_p_text(entry['p_value'], alpha)}", fontsize=9,
                         color=RETURNED if entry["p_value"] < alpha else "black")
            ax.legend(fontsize=8, loc="upper left")
            ax.tick_params(labelsize=8)
        ax = axes[2]
        names = list(samples["signs"])
        shares = [samples["signs"][k]["up"] / max(1, samples["signs"][k]["total"]) for k in names]
        bars = ax.bar(names, shares, color=[RETURNED if samples["signs"][k]["p_value"] < alpha else "#868e96" for k in names])
        ax.axhline(0.5, color="black", ls="--", lw=1, label="expected 0.5")
        for bar, k in zip(bars, names):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, f"p={samples['signs'][k]['p_value']:.2g}", ha="center", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title("share of positive displacements per coordinate\n(binomial tests)", fontsize=9)
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    elif name == "label_flip_rate":
        fig = _figure(7, 4.2)
        ax = fig.subplots()
        roles = list(samples["roles"])
        rates = [samples["roles"][r]["changed"] / max(1, samples["roles"][r]["total"]) for r in roles]
        bars = ax.bar(roles, rates, color=[RETURNED if samples["roles"][r]["p_value"] < alpha else "#868e96" for r in roles])
        ax.axhline(samples["expected_rate"], color="black", ls="--", lw=1, label=f"expected {samples['expected_rate']:.4f}")
        for bar, r in zip(bars, roles):
            entry = samples["roles"][r]
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.005,
                    f"{entry['changed']}/{entry['total']}\n{_p_text(entry['p_value'], alpha)}", ha="center", fontsize=7)
        ax.set_ylabel("share of real rows whose label changed", fontsize=9)
        ax.set_ylim(0, max(rates + [samples["expected_rate"]]) * 1.35 + 1e-3)
        ax.set_title(f"label flip rate (binomial tests); padding rows changed: {samples['padding_changed']}", fontsize=9)
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    elif name == "replacement_uniform":
        fig = _figure(7, 4.2)
        ax = fig.subplots()
        counts = samples["counts"]
        ax.bar([str(c) for c in samples["classes"]], counts, color="#868e96")
        if sum(counts):
            ax.axhline(sum(counts) / len(counts), color="black", ls="--", lw=1, label="expected (uniform)")
        ax.set_xlabel("replacement class (every label was 0)", fontsize=9)
        ax.set_ylabel("rows", fontsize=9)
        ax.set_title(f"replacement labels: chi-square {_p_text(samples['p_value'], alpha)}", fontsize=9,
                     color=RETURNED if not samples["p_value"] >= alpha else "black")
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    else:  # a contingency-table property
        tables = samples["tables"]
        columns = min(3, len(tables))
        rows = math.ceil(len(tables) / columns)
        fig = _figure(3.6 * columns + 1, 3.1 * rows + 0.6)
        axes = fig.subplots(rows, columns, squeeze=False).flatten()
        image = None
        for ax, (pair, (table, p)) in zip(axes, tables.items()):
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / max(table.sum(), 1)
            residual = (table - expected) / np.sqrt(np.maximum(expected, 1e-12))
            image = ax.imshow(residual, cmap="RdBu_r", vmin=-6, vmax=6)
            labels = samples["bins"][: table.shape[0]]
            ax.set_xticks(range(table.shape[1]), labels[: table.shape[1]], fontsize=7)
            ax.set_yticks(range(table.shape[0]), labels, fontsize=7)
            for (a, b), value in np.ndenumerate(table):
                ax.text(b, a, f"{int(value)}", ha="center", va="center", fontsize=7,
                        color="white" if abs(residual[a, b]) > 3.5 else "black")
            ax.set_title(f"{pair}\n{_p_text(p, alpha)}", fontsize=8, color=RETURNED if not p >= alpha else "black")
        for ax in axes[len(tables):]:
            ax.set_visible(False)
        if image is not None:
            fig.colorbar(image, ax=list(axes[: len(tables)]), shrink=0.7, label="(observed - expected) / sqrt(expected)")
    fig.suptitle(f"{name}: observed on the fixed seeded workload ({_short(impl_name)}) vs expected", fontsize=10)
    return png_bytes(fig)


# --- inputs ------------------------------------------------------------------------------------


def draw_inputs(case, *, heading: str = "") -> bytes:
    """The ground-truth boxes of a call, one panel per image (at most four)."""
    from matplotlib.patches import Rectangle

    images = list(range(min(4, case.batch_size)))
    fig = _figure(max(7.5, 3.2 * len(images) + 0.4), 3.9)
    axes = fig.subplots(1, max(1, len(images)), squeeze=False)[0]
    for ax, i in zip(axes, images):
        target = case.targets[i]
        ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor="#adb5bd", ls="--"))
        for label, box in zip(target["labels"].tolist(), target["boxes"].detach().double().cpu().tolist()):
            cx, cy, w, h = box
            ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, edgecolor="black", lw=2))
            ax.plot([cx], [cy], marker="+", ms=10, mew=1.5, color=RETURNED)  # a tiny box stays visible
            ax.text(cx - w / 2, cy - h / 2, f" class {label}: ({cx:.3g}, {cy:.3g}, {w:.3g}, {h:.3g})", va="bottom", fontsize=7)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(1.05, -0.05)
        ax.set_aspect("equal")
        count = len(target["labels"])
        ax.set_title(f"image {i}: {count} box{'es' if count != 1 else ''}", fontsize=9)
        ax.tick_params(labelsize=7)
    more = f" (first 4 of {case.batch_size} images)" if case.batch_size > 4 else ""
    fig.suptitle(heading or f"the call's ground-truth boxes{more} (cxcywh; + marks the centre)\nnum_classes {case.num_classes}, "
                 f"num_queries {case.num_queries}, num_denoising {case.num_denoising}, label_noise_ratio {case.label_noise_ratio:g}, "
                 f"box_noise_scale {case.box_noise_scale:g}", fontsize=9)
    return png_bytes(fig)


# --- the demo batch ---------------------------------------------------------------------------------


def draw_demo(case, outputs, impl_name: str) -> object:
    """One batch's denoising queries and the attention mask beside them: one panel per
    image (that has boxes) and group, with the ground-truth boxes (thick black), the
    group's positive queries (solid) and negative queries (dashed) in the group's colour;
    a query whose corners crossed and collapsed (side ~1e-5, as RT-DETR builds it) is an
    x at its centre. The mask tints each group's own block in its colour. Returns the
    matplotlib Figure."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    from dnspec.decode import decode_boxes, expects_logit_space
    from dnspec.invariants import layout_of

    layout = layout_of(case)
    groups, m, num_dn = layout.num_groups, layout.max_gt, layout.num_dn_rows
    palette = colormaps["tab10"]
    group_colour = lambda g: palette(g % 10)
    decoded = decode_boxes(outputs[1].detach().cpu(), expects_logit_space(case.box_noise_scale, False)).numpy()
    real = layout.real_rows()
    negative = layout.row_is_negative()
    images = [i for i in range(case.batch_size) if case.counts[i]]
    empty = [i for i in range(case.batch_size) if not case.counts[i]]
    shown_groups = min(groups, 6)
    panel = 2.3
    fig = _figure(panel * shown_groups + 6.4, max(panel * len(images) + 1.3, 6.0))
    grid = fig.add_gridspec(max(1, len(images)), shown_groups + 1, width_ratios=[1] * shown_groups + [6.0 / panel])
    for row, i in enumerate(images):
        for g in range(shown_groups):
            ax = fig.add_subplot(grid[row, g])
            ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor="#adb5bd", ls="--"))
            for box in case.targets[i]["boxes"].double().tolist():
                cx, cy, w, h = box
                ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, edgecolor="black", lw=2.4, zorder=2))
            for r in range(g * 2 * m, (g + 1) * 2 * m):
                if not bool(real[i, r]):
                    continue
                cx, cy, w, h = decoded[i, r]
                colour = group_colour(g)
                if min(w, h) < 1e-3:  # corners crossed: collapsed to side 1e-5
                    ax.plot([cx], [cy], marker="x", color=colour, ms=6, mew=1.6, zorder=3)
                    continue
                ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, edgecolor=colour, lw=1.5,
                                       ls="--" if bool(negative[r]) else "-", zorder=3))
            ax.set_xlim(-0.03, 1.03)
            ax.set_ylim(1.03, -0.03)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(f"group {g}", fontsize=9, color=group_colour(g))
            if g == 0:
                n = case.counts[i]
                ax.set_ylabel(f"image {i} ({n} box{'es' if n != 1 else ''})", fontsize=9)
    mask_ax = fig.add_subplot(grid[:, shown_groups])
    mask = outputs[2].bool().cpu().numpy()
    rgb = mask_image(mask)
    for g in range(groups):
        tint = np.array(group_colour(g)[:3]) * 0.45 + 0.55
        rows = slice(g * 2 * m, (g + 1) * 2 * m)
        block = rgb[rows, rows]
        block[~mask[rows, rows]] = tint
    mask_ax.imshow(rgb, extent=(0, mask.shape[1], mask.shape[0], 0), interpolation="nearest")
    for g in range(groups):
        if g:
            mask_ax.hlines(g * 2 * m, 0, num_dn, color="#868e96", lw=0.8)
            mask_ax.vlines(g * 2 * m, 0, num_dn, color="#868e96", lw=0.8)
        mask_ax.hlines(g * 2 * m + m, 0, num_dn, color="#868e96", lw=0.6, ls=":")  # positive | negative half
    mask_ax.axhline(num_dn, color=SPLIT_LINE, lw=1.8)
    mask_ax.axvline(num_dn, color=SPLIT_LINE, lw=1.8)
    ticks = [(g + 0.5) * 2 * m for g in range(groups)] + [(num_dn + mask.shape[0]) / 2]
    mask_ax.set_xticks(ticks, [f"g{g}" for g in range(groups)] + ["obj"], fontsize=8)
    mask_ax.set_yticks(ticks, [f"g{g}" for g in range(groups)] + ["obj"], fontsize=8)
    mask_ax.set_title(f"attention mask [{mask.shape[0]}, {mask.shape[1]}]: dark = may not attend;\n"
                      f"each group's own block in its colour ({m} positive rows, dotted line, {m} negative rows)", fontsize=9)
    handles = [Line2D([], [], color="black", lw=2.4, label="ground-truth box"),
               Line2D([], [], color="#495057", lw=1.5, ls="-", label="positive query (solid)"),
               Line2D([], [], color="#495057", lw=1.5, ls="--", label="negative query (dashed)"),
               Line2D([], [], color="#495057", marker="x", ls="", mew=1.6, label="negative whose corners crossed (collapsed to side 1e-5)"),
               Line2D([], [], color=SPLIT_LINE, lw=1.8, label=f"dn rows | object queries (N = {num_dn})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    note = ""
    if empty:
        note += f"; image{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} ha{'ve' if len(empty) > 1 else 's'} no box (padding rows only)"
    if shown_groups < groups:
        note += f"; the first {shown_groups} of {groups} groups drawn"
    fig.suptitle(f"{_short(impl_name)}: {case.batch_size} images with {list(case.counts)} boxes, num_denoising {case.num_denoising} -> "
                 f"{groups} groups of {m} positive + {m} negative rows, {case.num_queries} object queries; "
                 f"label_noise_ratio {case.label_noise_ratio:g}, box_noise_scale {case.box_noise_scale:g}{note}", fontsize=10)
    return fig


# --- a run's pictures --------------------------------------------------------------------------------


MASK, BOXES, POSITIVE_KIND, CLASSES, STATS, INPUTS = "mask", "boxes", "positive", "classes", "stats", "inputs"
PROPERTY_KIND = {"attention_mask": MASK, "boxes": BOXES, "positive_indices": POSITIVE_KIND, "class_queries": CLASSES}


def picture_kind(divergence) -> str:
    """Which picture shows a divergence best (see the module docstring)."""
    from dnspec.distributions import SAMPLES
    from dnspec.divergences import DIFFERENTIAL, FIELD_PROPERTY, VIOLATES

    signature = divergence.signature
    if signature.kind != VIOLATES:
        return INPUTS
    key = signature.key
    prefix = key.split(".")[0]
    if prefix in DIFFERENTIAL:
        prefix = FIELD_PROPERTY.get(key.rsplit(".", 1)[-1], "structure")
    if prefix in PROPERTY_KIND:
        return PROPERTY_KIND[prefix]
    if prefix == "structure" and "attn_mask" in key:
        return MASK
    label = (divergence.example_label or divergence.representative.label).split("[")[0]
    if label in SAMPLES or prefix in SAMPLES:
        return STATS
    return INPUTS


@contextlib.contextmanager
def _call_limit(seconds):
    from dnspec import calling

    previous = calling.DEFAULT_TIME_LIMIT_S_ACTIVE
    calling.DEFAULT_TIME_LIMIT_S_ACTIVE = seconds
    try:
        yield
    finally:
        calling.DEFAULT_TIME_LIMIT_S_ACTIVE = previous


def _outputs_problem(outputs) -> str:
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        return f"calling it again returned {type(outputs).__name__}, not 4 outputs"
    if outputs[0] is None:
        return "calling it again returned None outputs"
    return ""


def _call(impl, case, time_limit_s, differential: str = ""):
    """(outputs, reference outputs or None, problem): the implementation's outputs on
    ``case`` (for a differential divergence, the call the differential check makes, and
    the reference's outputs on the same call), or a one-line reason why there are none."""
    from dnspec.trial import CallKey, Trial

    key = CallKey(injected=True) if differential == "injected_noise_matches_reference" else CallKey()
    trial = Trial(impl, case)
    try:
        with _call_limit(time_limit_s):
            outputs = trial.outputs(key)
            reference = trial.reference(key) if differential else None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # ImplementationError, or whatever escaped it
        return None, None, f"calling it again on the example raised: {error}"
    problem = _outputs_problem(outputs)
    return (None, None, problem) if problem else (outputs, reference, "")


def _reference_mask(reference, layout):
    return reference[2].detach().cpu().bool() if reference is not None else layout.attn_mask()


def _mask_picture(impl, case, outputs, reference, title: str, name: str) -> Picture:
    import torch

    from dnspec.invariants import layout_of

    got = outputs[2]
    if not isinstance(got, torch.Tensor) or got.dim() != 2:
        return Picture(title, note=f"not drawn: attn_mask is {type(got).__name__}"
                       + (f" of shape {list(got.shape)}" if isinstance(got, torch.Tensor) else ""))
    layout = layout_of(case)
    expected = _reference_mask(reference, layout)
    source = "the reference's" if reference is not None else "dnspec.layout's"
    return Picture(title, f"{layout.num_dn_rows} dn rows in {layout.num_groups} groups of 2*max_gt = {2 * layout.max_gt}, "
                          f"{case.num_queries} object queries; expected: {source} mask",
                   draw_mask(expected.numpy(), got.detach().cpu().bool().numpy(), num_dn=layout.num_dn_rows,
                             group_width=2 * layout.max_gt, impl_name=name, heading=title))


def _reference_row(case, outputs, reference, impl):
    """(image, row, axis) of the first real row whose decoded box differs from the
    reference's most, or None."""
    from dnspec.decode import decode_boxes, expects_logit_space
    from dnspec.invariants import layout_of

    layout = layout_of(case)
    decoded = decode_boxes(outputs[1].detach().cpu(), expects_logit_space(case.box_noise_scale, impl.fixes_advisories))
    expected = decode_boxes(reference[1].detach().cpu(), expects_logit_space(case.box_noise_scale, False))
    if decoded.shape != expected.shape:
        return None
    diff = (decoded - expected).abs() * layout.real_rows()[..., None]
    if float(diff.max()) == 0:
        return None
    i, r, k = (int(v) for v in (diff == diff.max()).nonzero()[0])
    return i, r, k % 2


def _strip_picture(kind, case, outputs, reference, title: str, name: str) -> Picture:
    import torch

    if kind == POSITIVE_KIND:
        data = positive_strip_data(case, outputs, reference)
        return Picture(title, "expected: " + ("the reference's dn_positive_idx" if reference is not None else "dnspec.layout's positive rows"),
                       draw_positive_strips(data, impl_name=name, heading=title))
    if not isinstance(outputs[0], torch.Tensor) or outputs[0].dim() != 3:
        return Picture(title, note="not drawn: input_query_class is not a [bs, N, D] tensor")
    data = class_strip_data(case, outputs, reference)
    return Picture(title, "expected: " + ("the reference's classes on the same call" if reference is not None
                                          else "each row's ground-truth label (padding: num_classes)"),
                   draw_class_strips(data, impl_name=name, heading=title))


def _differential(divergence) -> str:
    from dnspec.divergences import DIFFERENTIAL

    prefix = divergence.signature.key.split(".")[0]
    return prefix if prefix in DIFFERENTIAL else ""


def pictures_for(impl, divergence, *, seed=None, device: str = "cpu", time_limit_s=None) -> list[Picture]:
    """The pictures of one divergence, redrawn by calling ``impl`` again."""
    import torch

    from dnspec.invariants import layout_of

    kind = picture_kind(divergence)
    name = getattr(impl, "name", "the implementation")
    case = divergence.example_case
    where = "the minimal example" if divergence.example_shrunk else "the example (as first found)"
    if kind == STATS:
        from dnspec.distributions import DEFAULT_SEED, SAMPLES

        prop = (divergence.example_label or divergence.representative.label).split("[")[0]
        prop = prop if prop in SAMPLES else divergence.signature.key.split(".")[0]
        with _call_limit(time_limit_s):
            try:
                samples = SAMPLES[prop](impl, DEFAULT_SEED if seed is None else seed, device)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                return [Picture(f"{prop}: observed vs expected", note=f"not drawn: running the workload again raised: {error}")]
        return [Picture(f"{prop}: observed vs expected",
                        "the samples the check tests, from its fixed seeded workload run again",
                        draw_statistics(prop, samples, impl_name=name))]
    if case is None:
        return [Picture("no picture", note="this divergence has no example call to redraw (it was seen on a fixed workload only)")]
    differential = _differential(divergence)
    outputs, reference, problem = _call(impl, case, time_limit_s, differential)
    if kind == INPUTS or outputs is None:
        what = problem or "calling it again on the example returned outputs (what is wrong with them is in the message above)"
        return [Picture(f"the inputs of {where}", what + ("; the inputs are drawn instead" if kind != INPUTS else ""), draw_inputs(case))]
    if differential:
        where += {"noiseless_matches_reference": " (noise-free call) vs the reference",
                  "injected_noise_matches_reference": " (injected noise draw) vs the reference"}[differential]
    if kind == BOXES:
        if not isinstance(outputs[1], torch.Tensor) or outputs[1].dim() != 3 or outputs[1].shape[-1] != 4:
            return [Picture("boxes", note="not drawn: input_query_bbox is not a [bs, N, 4] tensor")]
        chosen = _reference_row(case, outputs, reference, impl) if reference is not None else None
        i, r, axis = chosen or offending_box_row(case, outputs, impl, divergence.example_message or divergence.title)
        data = box_row_data(case, outputs, impl, i, r, reference)
        return [Picture(f"boxes: the offending row of {where}",
                        f"{data['role']} row {r} of image {i}: ground truth {[round(v, 4) for v in data['gt']]}, "
                        f"returned {[round(v, 4) for v in data['got']]} (cxcywh, decoded)"
                        + (f", the reference's {[round(v, 4) for v in data['reference']]}" if reference is not None else ""),
                        draw_box_row(data, axis=axis, impl_name=name))]
    if kind == MASK:
        pictures = [_mask_picture(impl, case, outputs, reference, f"attention mask of {where}", name)]
    else:
        pictures = [_strip_picture(kind, case, outputs, reference, f"{'positive indices' if kind == POSITIVE_KIND else 'class queries'} of {where}", name)]
    # a minimal example is small; the case as first found often shows the pattern better
    first = divergence.representative.case
    if first is not None and first is not case and layout_of(case).num_dn_rows < 12 and layout_of(first).num_dn_rows > layout_of(case).num_dn_rows:
        again, again_reference, _ = _call(impl, first, time_limit_s, differential)
        title = "the case as first found (larger, before shrinking)"
        if again is not None and kind == MASK:
            pictures.append(_mask_picture(impl, first, again, again_reference, f"attention mask of {title}", name))
        elif again is not None:
            pictures.append(_strip_picture(kind, first, again, again_reference, f"{'positive indices' if kind == POSITIVE_KIND else 'class queries'} of {title}", name))
    return pictures


def divergence_pictures(impl, divergences, *, seed=None, device: str = "cpu", time_limit_s=None) -> Pictures:
    """Every divergence's pictures (see :func:`pictures_for`); never raises (but
    KeyboardInterrupt): a picture that cannot be drawn is a note."""
    problem = plot_problem()
    if problem:
        return Pictures({}, f"No pictures: {problem}; the report is text only")
    out = {}
    for divergence in divergences:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[divergence.number] = pictures_for(impl, divergence, seed=seed, device=device, time_limit_s=time_limit_s)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # a picture must never take the report down
            out[divergence.number] = [Picture("no picture", note=f"could not be drawn: {type(error).__name__}: {error}")]
    return Pictures(out)
