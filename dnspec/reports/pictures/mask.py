"""The attention-mask picture: the expected mask (:mod:`dnspec.contract.layout`, or the reference's)
and the returned one side by side, the wrong cells highlighted, the dn group boundaries
and the dn rows | object queries split drawn, a large mask down-sampled in blocks.
"""

from __future__ import annotations

import math

from dnspec.reports.pictures.figures import (
    ALLOWED,
    BLOCKED,
    GROUP_LINE,
    LEAK,
    OVER,
    SPLIT_LINE,
    colour_rgb,
    figure,
    png_bytes,
    short_name,
)

MAX_MASK_CELLS = 160  # a mask side above this is drawn in blocks


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


def mask_image(mask, expected=None, block: int = 1):
    """RGB [H, W, 3] of a bool mask (True = blocked, dark); with ``expected``, the cells
    that differ in red (returned allows what must be blocked) or orange (returned blocks
    what must be allowed). Blocks: the share of blocked cells as grey, any wrong cell wins."""
    import numpy as np

    mask = np.asarray(mask, dtype=bool)
    blocked = _blocks(mask, block, "mean") if block > 1 else mask.astype(float)
    white, dark = np.array(colour_rgb(ALLOWED)), np.array(colour_rgb(BLOCKED))
    rgb = white[None, None, :] * (1 - blocked[..., None]) + dark[None, None, :] * blocked[..., None]
    if expected is not None:
        expected = np.asarray(expected, dtype=bool)
        leak, over = expected & ~mask, ~expected & mask
        if block > 1:
            leak, over = _blocks(leak, block, "any"), _blocks(over, block, "any")
        rgb[over] = colour_rgb(OVER)
        rgb[leak] = colour_rgb(LEAK)
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


def draw_mask(
    expected, got, *, num_dn: int, group_width: int, impl_name: str = "the implementation", heading: str = ""
) -> bytes:
    """The expected and returned masks side by side (bool arrays [S, S]; True = may not
    attend), the wrong cells highlighted in the returned one."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    expected, got = np.asarray(expected, dtype=bool), np.asarray(got, dtype=bool)
    same_shape = expected.shape == got.shape
    side = max(expected.shape + got.shape)
    block = max(1, math.ceil(side / MAX_MASK_CELLS))
    fig = figure(10, 5.8)
    axes = fig.subplots(1, 2)
    _draw_mask_axes(
        axes[0], expected, None, num_dn, group_width, f"expected {list(expected.shape)} (dnspec.contract.layout)", block
    )
    wrong = int((expected != got).sum()) if same_shape else None
    title = f"returned {list(got.shape)}"
    if wrong is not None:
        title += f": {wrong} wrong cell{'s' if wrong != 1 else ''} of {got.size}"
    _draw_mask_axes(axes[1], got, expected if same_shape else None, num_dn, group_width, title, block)
    handles = [
        Patch(facecolor=ALLOWED, edgecolor="#868e96", label="may attend"),
        Patch(facecolor=BLOCKED, label="may not attend"),
    ]
    if same_shape:
        handles += [
            Patch(facecolor=LEAK, label="returned allows, must block"),
            Patch(facecolor=OVER, label="returned blocks, must allow"),
        ]
    handles += [
        Line2D([], [], color=GROUP_LINE, lw=1, label=f"dn group boundary (every {group_width} rows)"),
        Line2D([], [], color=SPLIT_LINE, lw=2, label=f"dn rows | object queries (N = {num_dn})"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    text = (heading or "attention mask") + f", returned by {short_name(impl_name)}"
    if block > 1:
        text += f" (each pixel a {block}x{block} block: grey = share blocked; red or orange if any cell in it is wrong)"
    if not same_shape:
        text += f": shapes differ, {list(got.shape)} returned, {list(expected.shape)} expected"
    fig.suptitle(text, fontsize=10)
    return png_bytes(fig)
