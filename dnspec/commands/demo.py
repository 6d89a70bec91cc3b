"""``dnspec demo``: run a CDN builder on a small sample batch and show what it builds.

Prints the four outputs' shapes and dtypes, the denoising meta data, and the attention
mask of a tiny configuration drawn as characters (``#`` = may not attend), so the group
layout (positive rows, then negative rows, per group; object queries last) is visible.

``--plot FILE.png`` also draws one batch's denoising queries with matplotlib (the
``plot`` extra): the ground-truth boxes, each group's positive and negative noised boxes
in its own colour, and the attention mask beside them (:func:`dnspec.reports.pictures.draw_demo`).
The plotted batch is the sample batch's boxes with few enough groups to tell apart
(:data:`PLOT_GROUPS`), so the picture is readable.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="run a builder on a sample batch and print what it returns",
        description="Run a CDN builder (default: the reference) on a sample batch and print output shapes, dn_meta and a small attention mask.",
    )
    parser.add_argument(
        "spec", nargs="?", default="reference", metavar="SPEC", help="implementation to run (default: reference)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the sample batch and of torch.manual_seed (default 0)"
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="also draw one batch's denoising queries and the attention mask to FILE (.png, .svg or .pdf; "
        "needs the plot extra: pip install 'dnspec[plot]')",
    )
    parser.set_defaults(func=run)
    return parser


def _describe(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"{type(value).__name__} {list(value.shape)} {str(value.dtype).replace('torch.', '')} on {value.device}"
    return type(value).__name__


def mask_picture(mask, num_dn: int) -> list[str]:
    """The attention mask as text: one row per query, '#' where it may not attend, a bar
    between the denoising rows and the object queries."""
    rows = []
    for i, row in enumerate(mask.tolist()):
        cells = "".join("#" if blocked else "." for blocked in row)
        rows.append(f"  {'dn ' if i < num_dn else 'obj'} {cells[:num_dn]}|{cells[num_dn:]}")
        if i == num_dn - 1:
            rows.append("      " + "-" * num_dn + "+" + "-" * (len(row) - num_dn))
    return rows


PLOT_SUFFIXES = (".png", ".svg", ".pdf")
PLOT_COUNTS = (3, 1, 0)  # the sample batch's box counts (the plot draws the same boxes)
PLOT_GROUPS = 4  # groups in the plotted batch: num_denoising = PLOT_GROUPS * max(PLOT_COUNTS)


def plot_case(seed: int):
    """The batch ``--plot`` draws: the sample batch's boxes, PLOT_GROUPS groups, 10 object queries."""
    from dnspec.generation.cases import CdnCase, make_targets

    return CdnCase(
        targets=make_targets(PLOT_COUNTS, seed=seed, num_classes=80),
        num_classes=80,
        num_queries=10,
        num_denoising=PLOT_GROUPS * max(PLOT_COUNTS),
        embed_dim=16,
        seed=seed,
    )


def write_plot(impl, seed: int, path: str) -> str:
    """Draw :func:`plot_case` as built by ``impl`` to ``path``; '' or why it could not."""
    import torch

    from dnspec.reports.pictures import plot_problem
    from dnspec.reports.pictures.demo import draw_demo

    problem = plot_problem()
    if problem:
        return problem
    case = plot_case(seed)
    try:
        outputs = case.call(impl)
    except Exception as error:
        return f"{impl.name} raised {type(error).__name__} on the plotted batch: {error}"
    if (
        not isinstance(outputs, (tuple, list))
        or len(outputs) != 4
        or not isinstance(outputs[1], torch.Tensor)
        or not isinstance(outputs[2], torch.Tensor)
    ):
        return f"{impl.name} returned no boxes and mask to draw for the plotted batch"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draw_demo(case, outputs, impl.label).savefig(path, dpi=110, facecolor="white")
    return ""


def run(args) -> int:
    import os

    import torch

    from dnspec.generation.cases import CdnCase, make_targets
    from dnspec.implementations.specs import SpecError, load_implementation

    if args.plot:
        if os.path.splitext(args.plot)[1].lower() not in PLOT_SUFFIXES:
            print(f"dnspec demo: --plot {args.plot}: use a .png, .svg or .pdf file name", file=sys.stderr)
            return 2
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
            print(
                f"dnspec demo: --plot {args.plot}: the folder {os.path.dirname(os.path.abspath(args.plot))} does not exist",
                file=sys.stderr,
            )
            return 2
        from dnspec.reports.pictures import plot_problem

        problem = plot_problem()
        if problem:
            print(f"dnspec demo: --plot draws with matplotlib, and {problem}", file=sys.stderr)
            return 2
    try:
        impl = load_implementation(args.spec)
    except SpecError as error:
        print(f"dnspec demo: {error}", file=sys.stderr)
        return 2
    out = sys.stdout
    counts = (3, 1, 0)
    case = CdnCase(
        targets=make_targets(counts, seed=args.seed, num_classes=80),
        num_classes=80,
        num_queries=300,
        num_denoising=100,
        embed_dim=256,
        seed=args.seed,
    )
    out.write(
        f"{impl.label}: batch of {case.batch_size} images with {list(counts)} boxes, num_classes {case.num_classes}, "
        f"num_queries {case.num_queries}, num_denoising {case.num_denoising}, class_embed nn.Embedding({case.num_classes + 1}, {case.embed_dim})\n"
    )
    try:
        outputs = case.call(impl)
    except Exception as error:
        print(f"dnspec demo: {impl.name} raised {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        print(f"dnspec demo: {impl.name} returned {type(outputs).__name__}, not 4 outputs", file=sys.stderr)
        return 1
    names = ("input_query_class", "input_query_bbox", "attn_mask", "dn_meta")
    for name, value in zip(names, outputs, strict=True):
        out.write(f"  {name:<18} {_describe(value)}\n")
    meta = outputs[3] if isinstance(outputs[3], dict) else {}
    for key, value in meta.items():
        shown = (
            [list(v.shape) for v in value]
            if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor)
            else value
        )
        out.write(f"  dn_meta[{key!r}] = {shown}\n")

    if args.plot:
        problem = write_plot(impl, args.seed, args.plot)
        if problem:
            print(f"dnspec demo: --plot: {problem}", file=sys.stderr)
            return 1
        out.write(
            f"wrote {args.plot}: the boxes {list(PLOT_COUNTS)} with num_denoising {PLOT_GROUPS * max(PLOT_COUNTS)} "
            f"({PLOT_GROUPS} groups) and 10 object queries, and the attention mask\n"
        )

    small = CdnCase(
        targets=make_targets((2, 1), seed=args.seed, num_classes=3),
        num_classes=3,
        num_queries=3,
        num_denoising=4,
        embed_dim=4,
        seed=args.seed,
    )
    small_outputs = small.call(impl)
    if small_outputs[0] is None or not isinstance(small_outputs[2], torch.Tensor):
        return 0
    num_dn = int(small_outputs[2].shape[0]) - small.num_queries
    groups = small_outputs[3].get("dn_num_group", "?") if isinstance(small_outputs[3], dict) else "?"
    out.write(
        f"\nattention mask for boxes [2, 1], num_denoising 4, num_queries 3: {num_dn} dn rows in "
        f"dn_num_group={groups} groups (upstream: 2 positive + 2 negative rows each), then the object queries; "
        f"'#' = may not attend:\n"
    )
    out.write("\n".join(mask_picture(small_outputs[2].bool().cpu(), num_dn)) + "\n")
    return 0
