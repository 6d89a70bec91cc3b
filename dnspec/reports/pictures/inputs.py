"""The inputs picture: a call's ground-truth boxes, one panel per image, for a crash, a
hang or a property that has no picture of its own.
"""

from __future__ import annotations

from dnspec.reports.pictures.figures import RETURNED, figure, png_bytes


def draw_inputs(case, *, heading: str = "") -> bytes:
    """The ground-truth boxes of a call, one panel per image (at most four)."""
    from matplotlib.patches import Rectangle

    images = list(range(min(4, case.batch_size)))
    fig = figure(max(7.5, 3.2 * len(images) + 0.4), 3.9)
    axes = fig.subplots(1, max(1, len(images)), squeeze=False)[0]
    for ax, i in zip(axes, images, strict=False):
        target = case.targets[i]
        ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor="#adb5bd", ls="--"))
        for label, box in zip(
            target["labels"].tolist(), target["boxes"].detach().double().cpu().tolist(), strict=False
        ):
            cx, cy, w, h = box
            ax.add_patch(Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, edgecolor="black", lw=2))
            ax.plot([cx], [cy], marker="+", ms=10, mew=1.5, color=RETURNED)  # a tiny box stays visible
            ax.text(
                cx - w / 2,
                cy - h / 2,
                f" class {label}: ({cx:.3g}, {cy:.3g}, {w:.3g}, {h:.3g})",
                va="bottom",
                fontsize=7,
            )
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(1.05, -0.05)
        ax.set_aspect("equal")
        count = len(target["labels"])
        ax.set_title(f"image {i}: {count} box{'es' if count != 1 else ''}", fontsize=9)
        ax.tick_params(labelsize=7)
    more = f" (first 4 of {case.batch_size} images)" if case.batch_size > 4 else ""
    fig.suptitle(
        heading
        or f"the call's ground-truth boxes{more} (cxcywh; + marks the centre)\nnum_classes {case.num_classes}, "
        f"num_queries {case.num_queries}, num_denoising {case.num_denoising}, label_noise_ratio {case.label_noise_ratio:g}, "
        f"box_noise_scale {case.box_noise_scale:g}",
        fontsize=9,
    )
    return png_bytes(fig)
