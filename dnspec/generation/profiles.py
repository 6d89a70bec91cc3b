"""Hypothesis settings profiles for dnspec, registered in one place.

``ci``        Hypothesis' built-in ci profile (derandomized, no deadline, no database,
              replay blobs printed), extended with dnspec's example count; loaded
              automatically when the CI environment variable is set.
``dev``       the default: random seeds, the example database replays failures first.
``thorough``  10x dev's examples, for a release or a new implementation.

Each profile also sizes the statistical properties' workloads (:data:`STATISTICAL_CALLS`):
ci detects a 3% relative departure of every noise parameter, thorough 1%, dev 5%.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

DEV_EXAMPLES = 60
# `dnspec verify reference --profile ci` takes ~14 s on 2 shared CPU cores at 100 examples
# (~19 s at 150, ~30 s at 250); the budget is 30 s.
CI_EXAMPLES = 100
PROFILES = ("ci", "dev", "thorough")

# The statistical properties' workloads (dnspec.checks.distributions): how many calls of the
# implementation each property pools, every call on one batch of 256 images of 50 and 25
# boxes (alternately), 2 groups, 38,400 real noised rows. Sized so that each noise
# parameter's relative departure of STATISTICAL_EFFECT[profile] is detected with probability
# >= 99% at false alarm 1e-6 per property (dnspec.checks.power computes it, properties/
# test_statistics.py holds the sizes to it; docs/properties.md shows the tables). One call of
# the reference on this batch is ~10 ms of one core, so the ci workloads are ~0.3 s of builder
# time in all, thorough ~3 s, dev ~0.1 s.
STATISTICAL_EFFECT = {"dev": 0.05, "ci": 0.03, "thorough": 0.01}
STATISTICAL_CALLS = {
    "dev": {
        "label_flip_rate": 2,
        "replacement_uniform": 4,
        "label_noise_independence": 3,
        "box_magnitudes": 1,
        "noise_independence": 2,
    },
    "ci": {
        "label_flip_rate": 5,
        "replacement_uniform": 9,
        "label_noise_independence": 8,
        "box_magnitudes": 2,
        "noise_independence": 4,
    },
    "thorough": {
        "label_flip_rate": 43,
        "replacement_uniform": 79,
        "label_noise_independence": 67,
        "box_magnitudes": 15,
        "noise_independence": 32,
    },
}

# report_multiple_bugs=False: one property is one invariant, so report its one minimal
# counterexample (a hanging or crashing implementation otherwise shows up as "N distinct
# failures", an ExceptionGroup whose first line says nothing about the cause).
_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    report_multiple_bugs=False,
)


def register_profiles() -> None:
    # ci drops Hypothesis' explain phase: it re-runs a shrunk failure under a line tracer to
    # say which lines only failing cases ran, which cost 2-10 s per failing property here
    # (most under pytest) and mostly names dnspec's own check lines. dev and thorough keep it.
    ci = settings.get_profile("ci")
    settings.register_profile(
        "ci", ci, max_examples=CI_EXAMPLES, phases=[phase for phase in ci.phases if phase != Phase.explain], **_COMMON
    )
    settings.register_profile("dev", max_examples=DEV_EXAMPLES, **_COMMON)
    settings.register_profile("thorough", max_examples=10 * DEV_EXAMPLES, **_COMMON)


def default_profile() -> str:
    """``ci`` when the CI environment variable is set (as Hypothesis itself does), else ``dev``."""
    return "ci" if os.environ.get("CI") else "dev"


def statistical_profile() -> str:
    """The dnspec profile whose statistical workloads apply now: the loaded Hypothesis
    profile's (``ci-no-shrink`` is ``ci``), else :func:`default_profile` when none of
    dnspec's is loaded."""
    from hypothesis import settings

    base = settings.get_current_profile_name().split("-")[0]
    return base if base in PROFILES else default_profile()


def load_profile(name: str, pinned_examples: bool = True, shrink: bool = True) -> None:
    """Load a dnspec profile.

    ``pinned_examples=False`` drops Hypothesis' explicit phase (dnspec's pinned
    ``@example`` edge cases), so that a failure is found by generation and shrunk:
    ``dnspec verify --no-pinned`` uses it to show and replay the minimal counterexample
    when a pinned edge case failed first. ``shrink=False`` drops the shrink and explain
    phases (``dnspec verify --no-shrink``: the first failing example, as found, fast).
    """
    if name not in PROFILES:
        raise ValueError(f"profile: unknown Hypothesis profile {name!r}; choose one of {', '.join(PROFILES)}")
    register_profiles()
    dropped = set()
    if not pinned_examples:
        dropped.add(Phase.explicit)
    if not shrink:
        dropped |= {Phase.shrink, Phase.explain}
    if dropped:
        base = settings.get_profile(name)
        name = name + ("-no-pinned" if not pinned_examples else "") + ("-no-shrink" if not shrink else "")
        settings.register_profile(name, base, phases=[phase for phase in base.phases if phase not in dropped])
    settings.load_profile(name)
