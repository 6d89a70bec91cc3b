"""Showing benchmark results: the terminal table, markdown, the gate's lines, the plots
(matplotlib, from the ``plot`` extra, imported only when a plot is asked for), and the
scaling analysis (which term of the cost dominates at which size, fitted to the
measurements)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dnspec.benchmarks import workloads as bench_workloads
from dnspec.benchmarks.gate import GateRow
from dnspec.benchmarks.memory import MEMORY_METHODS
from dnspec.benchmarks.results import BenchResult
from dnspec.benchmarks.timing import CLOCK_TEXT
from dnspec.benchmarks.workloads import Workload

PLOT_INSTALL = "plots need matplotlib: pip install 'dnspec[plot]'"


# --- numbers ----------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def fmt_ratio(result: BenchResult, spec: str, workload: Workload) -> str:
    if spec == result.reference:
        return "1"
    stat = result.ratio(spec, workload)
    if stat is None:
        return "-"
    low, high = stat.interval()
    return f"{stat.ratio:.3g} ({low:.3g}-{high:.3g})"


# --- the results table -------------------------------------------------------------------------

COLUMNS = (
    "implementation",
    "batch",
    "boxes",
    "dn",
    "median",
    "spread",
    "images/s",
    "dn queries/s",
    "time / reference (95% CI)",
    "peak memory",
    "output",
)


def rows(result: BenchResult) -> list[list[str]]:
    """One row per (workload, implementation), workloads in run order."""
    out = []
    for w in result.workloads():
        for spec in result.specs():
            m = result.get(spec, w)
            if m is None:
                continue
            name = m.label if m.label != spec and m.label.startswith(spec) else spec
            head = [name + (" *" if m.note else ""), str(w.batch_size), str(w.max_boxes), str(w.num_denoising)]
            if m.error:
                out.append(head + [f"error: {m.error}"] + [""] * (len(COLUMNS) - 5))
                continue
            spread = m.spread()
            out.append(
                head
                + [
                    fmt_time(m.median_s),
                    "-" if spread is None else f"{spread:.0%}",
                    fmt_rate(m.images_per_s),
                    fmt_rate(m.dn_queries_per_s),
                    fmt_ratio(result, spec, w),
                    fmt_bytes(m.peak_bytes),
                    fmt_bytes(m.output_bytes),
                ]
            )
    return out


def notes(result: BenchResult) -> list[str]:
    seen = {}
    for m in result.measurements:
        if m.note:
            seen.setdefault(m.note, []).append(m.spec)
    return [f"* {', '.join(dict.fromkeys(specs))}: {note}" for note, specs in seen.items()]


def settings_line(result: BenchResult) -> str:
    clock = result.environment.get("clock", "")
    env = result.environment
    parts = [
        f"{result.rounds} interleaved rounds in {result.environment.get('blocks', 1)} blocks per workload",
    ]
    extra = env.get("extra_rounds") or {}
    if extra:
        parts.append(
            f"the gate measured {sum(extra.values())} more rounds on {len(extra)} workload(s) whose verdict the noise "
            "left unclear"
        )
    parts += [
        f"clock: {clock}",
        f"torch threads: {result.threads}",
        f"torch {env.get('torch', '?')}, python {env.get('python', '?')}, {env.get('machine', '')} x{env.get('cpu_count', '?')}",
    ]
    if env.get("cuda_device"):
        parts.append(env["cuda_device"])
    if env.get("load_average"):
        parts.append(f"load average {env['load_average'][0]}")
    return "; ".join(parts)


def print_table(result: BenchResult, console) -> None:
    from rich.table import Table

    table = Table(
        title="dnspec bench", caption="\n".join([*notes(result), settings_line(result)]), caption_justify="left"
    )
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=i != 0)
    previous = None
    for row in rows(result):
        key = tuple(row[1:4])
        if previous is not None and key != previous:
            table.add_section()
        previous = key
        table.add_row(*row)
    console.print(table)


def markdown_table(header, body) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def markdown(result: BenchResult, gate_rows: list[GateRow] | None = None, analysis: str = "") -> str:
    clock = result.environment.get("clock", "")
    methods = sorted({m.memory_method for m in result.measurements if m.memory_method})
    parts = [
        "# dnspec bench",
        "",
        f"`{result.command}`" if result.command else "",
        "",
        markdown_table(COLUMNS, rows(result)),
        "",
        "\n".join(notes(result)),
        "",
        f"Median time per call over {result.rounds} interleaved rounds; spread: interquartile range / median of "
        f"those samples; time / reference: ratio to `{result.reference}` timed in the same rounds (median over each "
        f"block's rounds, then over blocks), with its 95% interval. Clock: {CLOCK_TEXT.get(clock, clock)}.",
        "",
        "Peak memory: "
        + "; ".join(MEMORY_METHODS.get(m, m) for m in methods)
        + ". Output: bytes of the output tensors' "
        "distinct storages."
        if methods
        else "",
        "",
        settings_line(result),
    ]
    if result.environment.get("allocator"):
        parts += ["", result.environment["allocator"]]
    if gate_rows:
        parts += ["", "## Regression gate", "", markdown_table(GATE_COLUMNS, [gate_cells(r) for r in gate_rows])]
    if analysis:
        parts += ["", "## Scaling", "", analysis]
    return "\n".join(p for p in parts if p is not None).replace("\n\n\n", "\n\n") + "\n"


# --- the gate -----------------------------------------------------------------------------------

GATE_COLUMNS = ("implementation", "workload", "baseline / reference", "now / reference", "slowdown (± se)", "verdict")


def gate_cells(row: GateRow) -> list[str]:
    base = f"{row.baseline.ratio:.3g}" if row.baseline else "-"
    now = f"{row.current.ratio:.3g}" if row.current else "-"
    slowdown = "-" if row.slowdown is None else f"{row.slowdown:.3f} (± {row.se:.3f})"
    verdict = row.verdict.upper() if row.verdict == "slower" else row.verdict
    if row.note:
        verdict += f": {row.note}"
    elif row.noisy:
        verdict += " (noisy: se above a quarter of the threshold)"
    return [row.spec, row.workload.short, base, now, slowdown, verdict]


def print_gate(gate_rows: list[GateRow], console, threshold: float) -> None:
    from rich.table import Table

    table = Table(title=f"regression gate: slower than the baseline by more than {threshold:.0%}?")
    for i, name in enumerate(GATE_COLUMNS):
        table.add_column(name, justify="right" if 1 < i < 5 else "left")
    style = {"slower": "bold red", "inconclusive": "yellow", "ok": "green"}
    for row in gate_rows:
        table.add_row(*gate_cells(row), style=style.get(row.verdict))
    console.print(table)


def gate_summary(gate_rows: list[GateRow], threshold: float) -> str:
    compared = [r for r in gate_rows if r.verdict != "not compared"]
    slower = [r for r in compared if r.verdict == "slower"]
    unsure = [r for r in compared if r.verdict == "inconclusive"]
    if slower:
        worst = max(slower, key=lambda r: r.slowdown)
        return (
            f"gate: FAIL: {len(slower)} of {len(compared)} comparisons slower than the baseline by more than "
            f"{threshold:.0%} (worst: {worst.spec} at {worst.workload.short}, {worst.slowdown:.2f}x its baseline ratio)"
        )
    text = f"gate: ok: {len(compared)} comparisons within {threshold:.0%} of the baseline"
    if unsure:
        text += f"; {len(unsure)} above it but within the noise (inconclusive: rerun with more --repeats)"
    return text


# --- plots --------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_numbers(ax, xticks=None) -> None:
    """Log axes labelled 1, 2, 5, 10, ... (or at ``xticks``) rather than 10^0, 5x10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(NullLocator())
    if xticks:
        ax.set_xticks(list(xticks), [f"{x:g}" for x in xticks])
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_formatter(plain)


def matplotlib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def plot_throughput(result: BenchResult, path: str) -> None:
    """Images per second against batch size, log-log, one line per implementation (per
    boxes/dn combination when the run has several)."""
    plt = _pyplot()
    if plt is None:
        raise RuntimeError(PLOT_INSTALL)
    combos = sorted({(w.max_boxes, w.num_denoising) for w in result.workloads()})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for spec in result.specs():
        for boxes, dn in combos:
            points = sorted(
                (m.workload.batch_size, m.images_per_s)
                for m in result.measurements
                if m.spec == spec and m.images_per_s and (m.workload.max_boxes, m.workload.num_denoising) == (boxes, dn)
            )
            if not points:
                continue
            label = spec if len(combos) == 1 else f"{spec} (boxes {boxes}, dn {dn})"
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_numbers(ax, sorted({w.batch_size for w in result.workloads()}))
    ax.set_xlabel("batch size (images per call)")
    ax.set_ylabel("images / s (median)")
    w = result.workloads()[0]
    title = "CDN query builder throughput"
    if len(combos) == 1:
        title += f" (max {w.max_boxes} boxes, num_denoising {w.num_denoising}, {w.device})"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- scaling ------------------------------------------------------------------------------------

# The cost model the scaling analysis fits: time = sum of coefficient * term, per implementation.
TERMS = {
    "per call": "fixed cost of a call: Python, a few dozen small op launches, validation set-up (O(1))",
    "per image": "per-image work: Python loops over images, per-image ops (O(bs))",
    "per group": "per-group work: the Python loop over denoising groups that builds the mask (O(G))",
    "per dn query": "elementwise work on the dn queries: box noise over [bs, N, 4], padding, gathers (O(bs*N))",
    "embedding": "the class-query embedding, [bs, N, D] written (O(bs*N*D))",
    "mask": "the attention mask, (N+Q)^2 elements filled (O((N+Q)^2))",
}


def term_values(w: Workload) -> dict[str, float]:
    n = w.dn_queries
    return {
        "per call": 1.0,
        "per image": float(w.batch_size),
        "per group": float(w.num_groups),
        "per dn query": float(w.batch_size * n),
        "embedding": float(w.batch_size * n * w.embed_dim),
        "mask": float((n + w.num_queries) ** 2),
    }


@dataclass
class Fit:
    spec: str
    coefficients: dict
    workloads: list
    measured: list
    predicted: list

    def shares(self, w: Workload) -> dict[str, float]:
        values = term_values(w)
        parts = {t: self.coefficients[t] * values[t] for t in TERMS}
        total = sum(parts.values()) or 1.0
        return {t: v / total for t, v in parts.items()}

    @property
    def max_error(self) -> float:
        return max(abs(p - m) / m for p, m in zip(self.predicted, self.measured, strict=True))

    @property
    def median_error(self) -> float:
        errors = sorted(abs(p - m) / m for p, m in zip(self.predicted, self.measured, strict=True))
        return errors[len(errors) // 2]


def fit_scaling(result: BenchResult) -> dict[str, Fit]:
    """Non-negative least squares of each implementation's median times on the terms,
    in relative error (each workload weighs the same whatever its size)."""
    import numpy as np
    from scipy.optimize import nnls

    fits = {}
    for spec in result.specs():
        ms = [m for m in result.measurements if m.spec == spec and m.median_s]
        if len(ms) < len(TERMS):
            continue
        X = np.array([[term_values(m.workload)[t] for t in TERMS] for m in ms])
        y = np.array([m.median_s for m in ms])
        scale = X.max(axis=0)
        scale[scale == 0] = 1.0
        A = (X / scale) / y[:, None]
        beta, _ = nnls(A, np.ones(len(y)))
        beta = beta / scale
        fits[spec] = Fit(
            spec=spec,
            coefficients=dict(zip(TERMS, beta.tolist(), strict=True)),
            workloads=[m.workload for m in ms],
            measured=y.tolist(),
            predicted=(X @ beta).tolist(),
        )
    return fits


def sweep_points(result: BenchResult, spec: str, knob: str) -> list[tuple[int, float]]:
    points = []
    for m in result.measurements:
        w = m.workload
        others = {k: v for k, v in bench_workloads.SCALING_CENTRE.items() if k != knob}
        if m.spec == spec and m.median_s and all(getattr(w, k) == v for k, v in others.items()):
            points.append((getattr(w, knob), m.median_s))
    return sorted(points)


KNOB_LABEL = {
    "batch_size": "batch size",
    "max_boxes": "max boxes per image",
    "num_denoising": "num_denoising",
    "num_queries": "num_queries",
    "embed_dim": "embed_dim",
}


def scaling_analysis(result: BenchResult, fits: dict[str, Fit]) -> str:
    """Markdown: per implementation and sweep, the measured time and the fitted share of
    each term at each size, and a sentence on the dominant term at the ends."""
    centre = ", ".join(f"{KNOB_LABEL[k]} {v}" for k, v in bench_workloads.SCALING_CENTRE.items())
    lines = [
        f"Each sweep varies one knob around {centre}. The cost model time = sum of coefficient x term is fitted "
        "to each implementation's medians by non-negative least squares in relative error; the shares below are "
        "each term's part of the fitted time. Terms: " + "; ".join(f"**{t}**: {d}" for t, d in TERMS.items()) + ".",
        "",
    ]
    for spec, fit in fits.items():
        lines.append(f"**{spec}** (fit: median error {fit.median_error:.0%}, worst {fit.max_error:.0%})")
        lines.append("")
        header = ["sweep", "value", "measured", "fitted"] + list(TERMS)
        body = []
        for knob in bench_workloads.SCALING_SWEEPS:
            for value, seconds in sweep_points(result, spec, knob):
                w = next(
                    w
                    for w in fit.workloads
                    if getattr(w, knob) == value
                    and all(getattr(w, k) == v for k, v in bench_workloads.SCALING_CENTRE.items() if k != knob)
                )
                predicted = fit.predicted[fit.workloads.index(w)]
                shares = fit.shares(w)
                body.append(
                    [KNOB_LABEL[knob], str(value), fmt_time(seconds), fmt_time(predicted)]
                    + [f"{shares[t]:.0%}" if shares[t] >= 0.005 else "" for t in TERMS]
                )
        lines.append(markdown_table(header, body))
        lines.append("")
        lines.append(dominance_sentence(result, fit))
        lines.append("")
    return "\n".join(lines)


def dominance_sentence(result: BenchResult, fit: Fit) -> str:
    sentences = []
    for knob in bench_workloads.SCALING_SWEEPS:
        points = sweep_points(result, fit.spec, knob)
        if len(points) < 2:
            continue
        (lo, t_lo), (hi, t_hi) = points[0], points[-1]
        slope = math.log(t_hi / t_lo) / math.log(hi / lo) if hi != lo else 0.0
        ends = []
        for value in (lo, hi):
            w = next(
                w
                for w in fit.workloads
                if getattr(w, knob) == value
                and all(getattr(w, k) == v for k, v in bench_workloads.SCALING_CENTRE.items() if k != knob)
            )
            shares = fit.shares(w)
            top = max(shares, key=shares.get)
            ends.append(f"{top} ({shares[top]:.0%}) at {value}")
        sentences.append(
            f"{KNOB_LABEL[knob]} {lo} -> {hi}: time x{t_hi / t_lo:.3g} (log-log slope {slope:.2f}); "
            f"dominant term {ends[0]}, {ends[1]}."
        )
    return " ".join(sentences)


def plot_scaling(result: BenchResult, path: str, fits: dict[str, Fit] | None = None) -> None:
    """One PNG, three panels: time per call against each swept knob, log-log, one line
    per implementation (dashed: the fitted model)."""
    plt = _pyplot()
    if plt is None:
        raise RuntimeError(PLOT_INSTALL)
    knobs = list(bench_workloads.SCALING_SWEEPS)
    columns = min(3, len(knobs))
    rows_ = math.ceil(len(knobs) / columns)
    fig, grid = plt.subplots(rows_, columns, figsize=(4.7 * columns, 4.0 * rows_), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(knobs) :]:
        ax.set_visible(False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, knob in zip(axes, knobs, strict=False):
        for i, spec in enumerate(result.specs()):
            points = sweep_points(result, spec, knob)
            if not points:
                continue
            colour = colours[i % len(colours)]
            ax.plot([p[0] for p in points], [p[1] * 1e3 for p in points], marker="o", color=colour, label=spec)
            if fits and spec in fits:
                fit = fits[spec]
                model = []
                for value, _ in points:
                    w = next(
                        w
                        for w in fit.workloads
                        if getattr(w, knob) == value
                        and all(getattr(w, k) == v for k, v in bench_workloads.SCALING_CENTRE.items() if k != knob)
                    )
                    model.append(fit.predicted[fit.workloads.index(w)] * 1e3)
                ax.plot([p[0] for p in points], model, linestyle="--", color=colour, alpha=0.6)
        ax.set_title(f"time vs {KNOB_LABEL[knob]}", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_numbers(ax, bench_workloads.SCALING_SWEEPS[knob])
        ax.set_xlabel(KNOB_LABEL[knob])
        ax.set_ylabel("median time per call (ms)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    centre = ", ".join(f"{KNOB_LABEL[k]} {v}" for k, v in bench_workloads.SCALING_CENTRE.items())
    device = result.workloads()[0].device if result.workloads() else ""
    fig.suptitle(
        f"CDN query builder scaling on {device}: one knob at a time around {centre} (dashed: fitted cost model)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
