"""The picture of a statistical property: its observed samples (empirical CDF, bar charts
or contingency residuals) against the expected distribution, with the p-values.
"""

from __future__ import annotations

import math

from dnspec.reports.pictures.figures import RETURNED, figure, png_bytes, short_name


def _p_text(p: float, alpha: float) -> str:
    verdict = "FAILS" if not (p >= alpha) else "holds"
    return f"p = {p:.3g} ({verdict} at alpha {alpha:.2g})"


def draw_statistics(name: str, samples: dict, *, impl_name: str = "the implementation") -> bytes:
    """The observed samples of statistical property ``name`` against what is expected."""
    import numpy as np

    alpha = samples["alpha"]
    if name == "box_magnitudes":
        fig = figure(12, 4.4)
        axes = fig.subplots(1, 3)
        for ax, role in zip(axes[:2], ("positive", "negative"), strict=True):
            entry = samples["magnitudes"][role]
            values = np.sort(entry["values"])
            ax.step(
                values,
                np.arange(1, len(values) + 1) / len(values),
                where="post",
                color=RETURNED,
                lw=1.5,
                label="observed (empirical CDF)",
            )
            ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="expected U[0, 1)")
            ax.set_xlim(min(0, values.min()), max(1, values.max()))
            ax.set_ylim(0, 1)
            shift = " - 1" if role == "negative" else ""
            ax.set_title(
                f"{role} rows: |u|{shift}, n = {len(values)}\nKS {_p_text(entry['p_value'], alpha)}",
                fontsize=9,
                color=RETURNED if entry["p_value"] < alpha else "black",
            )
            ax.legend(fontsize=8, loc="upper left")
            ax.tick_params(labelsize=8)
        ax = axes[2]
        names = list(samples["signs"])
        shares = [samples["signs"][k]["up"] / max(1, samples["signs"][k]["total"]) for k in names]
        bars = ax.bar(
            names, shares, color=[RETURNED if samples["signs"][k]["p_value"] < alpha else "#868e96" for k in names]
        )
        ax.axhline(0.5, color="black", ls="--", lw=1, label="expected 0.5")
        for bar, k in zip(bars, names, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() + 0.02,
                f"p={samples['signs'][k]['p_value']:.2g}",
                ha="center",
                fontsize=7,
            )
        ax.set_ylim(0, 1)
        ax.set_title("share of positive displacements per coordinate\n(binomial tests)", fontsize=9)
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    elif name == "label_flip_rate":
        fig = figure(7, 4.2)
        ax = fig.subplots()
        roles = list(samples["roles"])
        rates = [samples["roles"][r]["changed"] / max(1, samples["roles"][r]["total"]) for r in roles]
        bars = ax.bar(
            roles, rates, color=[RETURNED if samples["roles"][r]["p_value"] < alpha else "#868e96" for r in roles]
        )
        ax.axhline(
            samples["expected_rate"], color="black", ls="--", lw=1, label=f"expected {samples['expected_rate']:.4f}"
        )
        for bar, r in zip(bars, roles, strict=True):
            entry = samples["roles"][r]
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() + 0.005,
                f"{entry['changed']}/{entry['total']}\n{_p_text(entry['p_value'], alpha)}",
                ha="center",
                fontsize=7,
            )
        ax.set_ylabel("share of real rows whose label changed", fontsize=9)
        ax.set_ylim(0, max(rates + [samples["expected_rate"]]) * 1.35 + 1e-3)
        ax.set_title(
            f"label flip rate (binomial tests); padding rows changed: {samples['padding_changed']}", fontsize=9
        )
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    elif name == "replacement_uniform":
        fig = figure(7, 4.2)
        ax = fig.subplots()
        counts = samples["counts"]
        ax.bar([str(c) for c in samples["classes"]], counts, color="#868e96")
        if sum(counts):
            ax.axhline(sum(counts) / len(counts), color="black", ls="--", lw=1, label="expected (uniform)")
        ax.set_xlabel("replacement class (every label was 0)", fontsize=9)
        ax.set_ylabel("rows", fontsize=9)
        ax.set_title(
            f"replacement labels: chi-square {_p_text(samples['p_value'], alpha)}",
            fontsize=9,
            color=RETURNED if not samples["p_value"] >= alpha else "black",
        )
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    else:  # a contingency-table property
        tables = samples["tables"]
        columns = min(3, len(tables))
        rows = math.ceil(len(tables) / columns)
        fig = figure(3.6 * columns + 1, 3.1 * rows + 0.6)
        axes = fig.subplots(rows, columns, squeeze=False).flatten()
        image = None
        for ax, (pair, (table, p)) in zip(axes, tables.items(), strict=False):
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / max(table.sum(), 1)
            residual = (table - expected) / np.sqrt(np.maximum(expected, 1e-12))
            image = ax.imshow(residual, cmap="RdBu_r", vmin=-6, vmax=6)
            labels = samples["bins"][: table.shape[0]]
            ax.set_xticks(range(table.shape[1]), labels[: table.shape[1]], fontsize=7)
            ax.set_yticks(range(table.shape[0]), labels, fontsize=7)
            for (a, b), value in np.ndenumerate(table):
                ax.text(
                    b,
                    a,
                    f"{int(value)}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(residual[a, b]) > 3.5 else "black",
                )
            ax.set_title(f"{pair}\n{_p_text(p, alpha)}", fontsize=8, color=RETURNED if not p >= alpha else "black")
        for ax in axes[len(tables) :]:
            ax.set_visible(False)
        if image is not None:
            fig.colorbar(
                image, ax=list(axes[: len(tables)]), shrink=0.7, label="(observed - expected) / sqrt(expected)"
            )
    fig.suptitle(f"{name}: observed on the fixed seeded workload ({short_name(impl_name)}) vs expected", fontsize=10)
    return png_bytes(fig)
