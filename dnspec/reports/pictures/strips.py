"""The strip pictures over the dn rows, per image: the expected and the returned positive
rows (``dn_positive_idx``), and the expected and the returned class of each row, the
rows that break a rule marked; long strips drawn in blocks.
"""

from __future__ import annotations

import math

from dnspec.reports.pictures.figures import GROUP_LINE, POSITIVE, RETURNED, colour_rgb, figure, png_bytes, short_name

MAX_STRIP_CELLS = 400  # a strip longer than this is drawn in blocks
MAX_STRIP_IMAGES = 6


def positive_strip_data(case, outputs, reference=None) -> dict:
    """Per image, the expected positive rows (the layout's, or the reference's outputs')
    and the returned ones (None: unreadable)."""
    import torch

    from dnspec.checks.invariants import layout_of

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
    return {
        "expected": expected,
        "got": got,
        "num_dn": layout.num_dn_rows,
        "group_width": 2 * layout.max_gt,
        "real": layout.real_rows().tolist(),
        "negative": layout.row_is_negative().tolist(),
        "counts": list(case.counts),
    }


def class_strip_data(case, outputs, reference=None) -> dict:
    """Per image and row, the class the row must carry when no label noise applies (its
    box's label; padding: num_classes) or, with ``reference``, the class the reference's
    row carries; the class it carries (nearest embedding row), whether it is an exact
    embedding row, and which rows break a rule of the class check (or differ from the
    reference's)."""
    from dnspec.checks.invariants import gt_rows, layout_of
    from dnspec.contract.decode import recover_labels

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
    return {
        "expected": gt_labels.tolist(),
        "got": labels.tolist(),
        "exact": exact.tolist(),
        "bad": bad.tolist(),
        "changed": (real & (labels != gt_labels)).tolist(),
        "num_classes": case.num_classes,
        "group_width": 2 * layout.max_gt,
        "num_dn": layout.num_dn_rows,
        "ratio": case.label_noise_ratio,
    }


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
    table = np.array([colour_rgb(STRIP_COLOURS[k]) for k in range(len(STRIP_COLOURS))])
    return table[categories]


def draw_positive_strips(data: dict, *, impl_name: str = "the implementation", heading: str = "") -> bytes:
    """Per image, two strips over the dn rows: expected positive rows and the returned
    list (green: right; red: listed but not a positive row of a real box; pink: a
    positive row missing from the list). Negative rows shaded grey, padding rows beige."""
    from matplotlib.patches import Patch

    num_dn = data["num_dn"]
    bad = [
        got is None or set(got) != exp or len(got) != len(exp)
        for exp, got in zip(data["expected"], data["got"], strict=False)
    ]
    images = _strip_images(bad)
    block = max(1, math.ceil(num_dn / MAX_STRIP_CELLS))
    fig = figure(11, 1.1 + 1.0 * len(images))
    axes = fig.subplots(len(images), 1, squeeze=False)[:, 0]
    for ax, i in zip(axes, images, strict=True):
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
    handles = [
        Patch(facecolor=POSITIVE, label="positive row listed"),
        Patch(facecolor=RETURNED, label="listed, but not a positive row"),
        Patch(facecolor="#ffc9c9", label="positive row missing"),
        Patch(facecolor="#dee2e6", label="negative row"),
        Patch(facecolor="#fff3bf", label="padding row"),
        Patch(facecolor=GROUP_LINE, label="group boundary"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle(
        heading or f"dn_positive_idx, expected (dnspec.contract.layout) vs returned by {short_name(impl_name)}",
        fontsize=10,
    )
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
    fig = figure(11, 1.2 + (1.05 if num_dn <= 40 else 1.4) * len(images))
    axes = fig.subplots(len(images), 1, squeeze=False)[:, 0]
    palette = colormaps["tab20"]

    def colour(c):
        if c == num_classes:
            return np.array(colour_rgb("#e9ecef"))
        if c > num_classes or c < 0:
            return np.array(colour_rgb(RETURNED))
        return np.array(palette(c % 20)[:3])

    for ax, i in zip(axes, images, strict=True):
        bad = data["bad"][i]
        rows = []
        for values in (data["expected"][i], data["got"][i]):
            rows.append(np.array([colour(values[r]) for r in range(0, num_dn, block)]))
        labels = ["expected", "returned"]
        outline = num_dn <= 40  # few cells: outline the bad ones; many: a third strip marks them
        if not outline:
            marks = np.array([any(bad[r : r + block]) for r in range(0, num_dn, block)])
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
    handles = [
        Patch(
            facecolor="white" if num_dn <= 40 else "black",
            edgecolor="black",
            lw=2.5,
            label="breaks a rule (not an embedding row, padding not num_classes, out of range, changed at ratio 0, or unlike the reference)",
        ),
        Line2D([], [], marker="o", color="black", ls="", ms=3, label="changed by label noise (allowed)"),
        Line2D([], [], marker="s", color="#e9ecef", ls="", ms=9, label=f"class num_classes = {num_classes} (padding)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        heading
        or f"class queries (colour = class), label_noise_ratio {data['ratio']:g}: expected vs returned by {short_name(impl_name)}",
        fontsize=10,
    )
    return png_bytes(fig)
