"""How strong the statistical properties are: for each noise parameter they test, the
smallest relative departure that its test detects with probability >= 99% at its
false-alarm rate, from the test and its sample size on a profile's workload.

    python -m dnspec.checks.power [--profile ci|dev|thorough] [--power 0.99]

Sample sizes come from the code that pairs and pools the rows
(:func:`dnspec.checks.distributions.label_pairs`, :func:`~dnspec.checks.distributions.box_pairs`)
applied to the layout of the profile's pooled batch, so the table cannot drift from what
the checks test. Each parameter's departure and how its power is computed:

flip probability      the flip probability times (1 - e) or (1 + e), on positive and on
(per role)            negative rows: the exact two-sided binomial test's rejection region
                      (scipy's binomtest at the per-test alpha), its exact power
                      (binomial tails at the departed rate).
replacement label     one class drawn with probability (1 - e) or (1 + e) times 1/K, the
                      other K - 1 sharing the rest (a never-drawn class is e = 1): the
                      chi-square test's power from the noncentral chi-square with
                      noncentrality n e^2 / (K - 1).
magnitude range       the drawn magnitude's range [a, b) narrowed or widened by e (b - a)
(per role)            at either end: narrowed, every value lies where the KS statistic is
                      already >= e, so it is caught for sure once e exceeds the KS critical
                      value (scipy.stats.kstwo); widened, the KS statistic is at least the
                      share of values outside [a, b), a binomial tail. The smaller power of
                      the four is stated (a lower bound).
sign balance          P(sign = +1) = 0.5 (1 +- e) on one coordinate: the exact binomial test,
(per coordinate)      as for the flip probability.
independence          the probability of one event given the other is (1 + e) times its
(per pair)            marginal, marginals kept: a 2x2 chi-square test of independence, power
                      from the noncentral chi-square (1 df) with noncentrality
                      n p q e^2 / ((1 - p)(1 - q)), p and q the two events' probabilities.

The smallest detectable e is found by bisection on the power, which is monotone in e.
The self-test (``properties/selftest/power_variants.py``) runs builders that depart by the
ci target in each parameter and checks they are caught.
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass

import torch
from scipy import stats

from dnspec.checks import distributions as dist
from dnspec.checks.invariants import layout_of

POWER = 0.99
COORDINATE_NAMES = dist.COORDINATES


@dataclass(frozen=True)
class ParameterPower:
    """One noise parameter as one test sees it: the property, the parameter, the test, its
    sample size and per-test alpha, and the smallest relative departure it detects with
    probability >= ``power`` (inf: none up to the largest possible departure)."""

    prop: str
    parameter: str
    test: str
    samples: int
    alpha: float
    detectable: float
    power: float = POWER


# --- the power of each kind of test ------------------------------------------------------


def _bisect(power_at, high: float, target: float) -> float:
    """The smallest e in (0, high] with power_at(e) >= target (inf when none), for a power
    non-decreasing in e."""
    if power_at(high) < target:
        return math.inf
    low = 0.0
    for _ in range(40):
        mid = (low + high) / 2
        if power_at(mid) >= target:
            high = mid
        else:
            low = mid
    return high


def binomial_rejection(n: int, p0: float, alpha: float) -> tuple[int, int]:
    """(k_low, k_high): scipy's two-sided binomtest of ``p0`` rejects at ``alpha`` exactly
    when the count is <= k_low or >= k_high (k_low = -1, k_high = n + 1: never)."""

    def rejects(k):
        return stats.binomtest(k, n, p0).pvalue < alpha

    mode = int(n * p0)
    k_low = -1
    if rejects(0):
        lo, hi = 0, mode  # rejects(lo) holds, rejects(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if rejects(mid) else (lo, mid)
        k_low = lo
    k_high = n + 1
    if rejects(n):
        lo, hi = mode + 1, n  # rejects(hi) holds, rejects(lo) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if rejects(mid) else (mid, hi)
        k_high = hi
    return k_low, k_high


def binomial_detectable(n: int, p0: float, alpha: float, power: float = POWER) -> float:
    """The smallest e such that the two-sided exact binomial test detects p0 (1 - e) and
    p0 (1 + e) each with probability >= power."""
    k_low, k_high = binomial_rejection(n, p0, alpha)

    def power_at(p1):
        return float(stats.binom.cdf(k_low, n, p1) + stats.binom.sf(k_high - 1, n, p1))

    down = _bisect(lambda e: power_at(p0 * (1 - e)), 1.0, power)
    up = _bisect(lambda e: power_at(p0 * (1 + e)), (1 - p0) / p0, power)
    return max(down, up)


def chi_square_power(noncentrality: float, df: int, alpha: float) -> float:
    """The power of a chi-square test with ``df`` degrees of freedom at ``alpha`` against
    an alternative of noncentrality ``noncentrality``."""
    return float(stats.ncx2.sf(stats.chi2.isf(alpha, df), df, noncentrality))


def uniformity_detectable(n: int, categories: int, alpha: float, power: float = POWER) -> float:
    """The smallest e such that the chi-square goodness-of-fit test on ``n`` draws over
    ``categories`` classes detects one class drawn (1 +- e) / K as often as uniform."""
    df = categories - 1
    return _bisect(lambda e: chi_square_power(n * e * e / df, df, alpha), 1.0, power)


def independence_detectable(n: int, p: float, q: float, alpha: float, power: float = POWER) -> float:
    """The smallest e such that the 2x2 chi-square test of independence on ``n`` pairs
    detects P(B | A) = (1 + e) q, with P(A) = p and P(B) = q kept."""
    scale = p * q / ((1 - p) * (1 - q))
    high = min((1 - q) / q, 1.0)  # P(B | A) <= 1
    return _bisect(lambda e: chi_square_power(n * scale * e * e, 1, alpha), high, power)


def range_detectable(n: int, alpha: float, power: float = POWER) -> float:
    """The smallest e such that the one-sample KS test of U[0, 1) on ``n`` values detects
    the range narrowed or widened by e at either end with probability >= power (a lower
    bound on the power; see the module docstring)."""
    # scipy's kstest uses the exact distribution up to 10,000 values and the asymptotic one
    # above: the larger of the two critical values holds for either
    critical = max(float(stats.kstwo.isf(alpha, n)), float(stats.kstwobign.isf(alpha)) / math.sqrt(n))
    needed = math.floor(n * critical)  # more than this many values outside: D > critical

    def widened(e):
        return float(stats.binom.sf(needed, n, e / (1 + e)))

    return max(critical, _bisect(widened, 1.0, power))


# --- the sample sizes of the checks, from their code ---------------------------------------


def _layout_rows(calls: int, *, labels: bool, boxes: bool) -> tuple[dist.Rows, dict]:
    """Rows shaped like ``calls`` pooled calls on the statistical batch (the masks are the
    layout's; the values are placeholders: only how many pairs each mask picks matters)."""
    case = dist.uniform_boxes_case(dist.FLIP_CLASSES, 1.0, 1.0, 0, workload=dist.STATISTICAL)
    layout = layout_of(case)
    real = layout.real_rows().repeat(calls, 1)
    negative = layout.row_is_negative()[None, :].expand_as(real)
    zeros = torch.zeros(real.shape, dtype=torch.int64)
    rows = dist.Rows(real, negative, zeros, zeros if labels else None, torch.ones((*real.shape, 4)) if boxes else None)
    return rows, {"max_gt": layout.max_gt, "groups": layout.num_groups}


@functools.lru_cache(maxsize=8)
def power_table(profile: str, power: float = POWER) -> tuple[ParameterPower, ...]:
    """Every tested parameter's smallest detectable relative departure on ``profile`` (the
    profile's call counts as they are when first asked: the table is cached)."""
    from dnspec.generation import profiles

    calls = profiles.STATISTICAL_CALLS[profile]
    out = []

    rows, _ = _layout_rows(calls["label_flip_rate"], labels=True, boxes=False)
    p0 = dist.expected_flip_rate(dist.FLIP_RATIO, dist.FLIP_CLASSES, False)
    alpha = dist.FALSE_ALARM / 2
    for role, mask in (("positive", rows.real & ~rows.negative), ("negative", rows.real & rows.negative)):
        n = int(mask.sum())
        out.append(
            ParameterPower(
                "label_flip_rate",
                f"flip probability, {role} rows",
                "exact binomial",
                n,
                alpha,
                binomial_detectable(n, p0, alpha, power),
                power,
            )
        )

    rows, _ = _layout_rows(calls["replacement_uniform"], labels=True, boxes=False)
    k = dist.REPLACEMENT_CLASSES - 1
    n = int(int(rows.real.sum()) * 0.5 * k / dist.REPLACEMENT_CLASSES)  # expected changed rows
    out.append(
        ParameterPower(
            "replacement_uniform",
            f"replacement label: one of {k} classes (a never-drawn class: 100%)",
            f"chi-square, {k - 1} df",
            n,
            dist.FALSE_ALARM,
            uniformity_detectable(n, k, dist.FALSE_ALARM, power),
            power,
        )
    )

    rows, facts = _layout_rows(calls["label_noise_independence"], labels=True, boxes=True)
    pairs = dist.label_pairs(rows, facts)
    alpha = dist.FALSE_ALARM / len(pairs)
    for name, (a, _) in pairs.items():
        q = 0.5 if "box noise" in name else p0
        n = int(a.numel())
        out.append(
            ParameterPower(
                "label_noise_independence",
                f"independence: {name}",
                "chi-square 2x2",
                n,
                alpha,
                independence_detectable(n, p0, q, alpha, power),
                power,
            )
        )

    rows, _ = _layout_rows(calls["box_magnitudes"], labels=False, boxes=True)
    alpha = dist.FALSE_ALARM / 6
    for role, mask in (("positive", rows.real & ~rows.negative), ("negative", rows.real & rows.negative)):
        n = 4 * int(mask.sum())
        span = "[0, 1)" if role == "positive" else "[1, 2)"
        out.append(
            ParameterPower(
                "box_magnitudes",
                f"magnitude range {span}, {role} rows",
                "KS",
                n,
                alpha,
                range_detectable(n, alpha, power),
                power,
            )
        )
    n = int(rows.real.sum())
    detectable = binomial_detectable(n, 0.5, alpha, power)
    for name in COORDINATE_NAMES:
        out.append(
            ParameterPower("box_magnitudes", f"sign balance, {name}", "exact binomial", n, alpha, detectable, power)
        )

    rows, facts = _layout_rows(calls["noise_independence"], labels=False, boxes=True)
    pairs = dist.box_pairs(rows, facts)
    alpha = dist.FALSE_ALARM / (len(pairs) * len(dist.BOX_FEATURES))
    for name, (a, _) in pairs.items():
        n = int(a.numel())
        out.append(
            ParameterPower(
                "noise_independence",
                f"independence (sign; magnitude half): {name}",
                "chi-square 2x2",
                n,
                alpha,
                independence_detectable(n, 0.5, 0.5, alpha, power),
                power,
            )
        )
    return tuple(out)


def weakest(profile: str) -> float:
    """The largest of the smallest detectable departures on ``profile``: the resolution
    every noise parameter reaches."""
    return max(p.detectable for p in power_table(profile))


def format_table(profile: str, power: float = POWER) -> str:
    """The power table of ``profile`` as markdown, with its calls per property."""
    from dnspec.generation import profiles

    rows = power_table(profile, power)
    calls = profiles.STATISTICAL_CALLS[profile]
    lines = [
        f"profile {profile}: target {profiles.STATISTICAL_EFFECT[profile]:.0%}, "
        f"{sum(calls.values())} calls of {dist.STATISTICAL.batch_size} images in all; "
        f"smallest relative departure detected with probability >= {power:.0%}",
        "",
        "| property | calls | parameter | test | samples | alpha | detected from |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.prop} | {calls[row.prop]} | {row.parameter} | {row.test} | {row.samples:,} | "
            f"{row.alpha:.2g} | {row.detectable:.2%} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    from dnspec.generation import profiles

    parser = argparse.ArgumentParser(prog="python -m dnspec.checks.power", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=profiles.PROFILES, default="ci")
    parser.add_argument("--power", type=float, default=POWER, help="the detection probability (default 0.99)")
    args = parser.parse_args(argv)
    if not 0 < args.power < 1:
        parser.error(f"--power: must be in (0, 1), got {args.power}")
    print(format_table(args.profile, args.power))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
