"""The demo picture (``dnspec demo --plot``): one batch's denoising queries per image and
group, each group in its own colour, with the attention mask beside them.
"""

from __future__ import annotations

from dnspec.reports.pictures.figures import SPLIT_LINE, figure, short_name
from dnspec.reports.pictures.mask import mask_image


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

    from dnspec.checks.invariants import layout_of
    from dnspec.contract.decode import decode_boxes, expects_logit_space

    layout = layout_of(case)
    groups, m, num_dn = layout.num_groups, layout.max_gt, layout.num_dn_rows
    palette = colormaps["tab10"]

    def group_colour(g):
        return palette(g % 10)

    decoded = decode_boxes(outputs[1].detach().cpu(), expects_logit_space(case.box_noise_scale, False)).numpy()
    real = layout.real_rows()
    negative = layout.row_is_negative()
    images = [i for i in range(case.batch_size) if case.counts[i]]
    empty = [i for i in range(case.batch_size) if not case.counts[i]]
    shown_groups = min(groups, 6)
    panel = 2.3
    fig = figure(panel * shown_groups + 6.4, max(panel * len(images) + 1.3, 6.0))
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
                ax.add_patch(
                    Rectangle(
                        (cx - w / 2, cy - h / 2),
                        w,
                        h,
                        fill=False,
                        edgecolor=colour,
                        lw=1.5,
                        ls="--" if bool(negative[r]) else "-",
                        zorder=3,
                    )
                )
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
    mask_ax.set_title(
        f"attention mask [{mask.shape[0]}, {mask.shape[1]}]: dark = may not attend;\n"
        f"each group's own block in its colour ({m} positive rows, dotted line, {m} negative rows)",
        fontsize=9,
    )
    handles = [
        Line2D([], [], color="black", lw=2.4, label="ground-truth box"),
        Line2D([], [], color="#495057", lw=1.5, ls="-", label="positive query (solid)"),
        Line2D([], [], color="#495057", lw=1.5, ls="--", label="negative query (dashed)"),
        Line2D(
            [],
            [],
            color="#495057",
            marker="x",
            ls="",
            mew=1.6,
            label="negative whose corners crossed (collapsed to side 1e-5)",
        ),
        Line2D([], [], color=SPLIT_LINE, lw=1.8, label=f"dn rows | object queries (N = {num_dn})"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    note = ""
    if empty:
        note += f"; image{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} ha{'ve' if len(empty) > 1 else 's'} no box (padding rows only)"
    if shown_groups < groups:
        note += f"; the first {shown_groups} of {groups} groups drawn"
    fig.suptitle(
        f"{short_name(impl_name)}: {case.batch_size} images with {list(case.counts)} boxes, num_denoising {case.num_denoising} -> "
        f"{groups} groups of {m} positive + {m} negative rows, {case.num_queries} object queries; "
        f"label_noise_ratio {case.label_noise_ratio:g}, box_noise_scale {case.box_noise_scale:g}{note}",
        fontsize=10,
    )
    return fig
