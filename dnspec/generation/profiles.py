"""Hypothesis settings profiles for dnspec, registered in one place.

``ci``        Hypothesis' built-in ci profile (derandomized, no deadline, no database,
              replay blobs printed), extended with dnspec's example count; loaded
              automatically when the CI environment variable is set.
``dev``       the default: random seeds, the example database replays failures first.
``thorough``  10x dev's examples, for a release or a new implementation.

A ``dnspec verify`` run leaves the user's tree as it found it and draws the same examples
for the same ``--seed`` wherever it runs (:func:`outside_the_tree`):

- Hypothesis' storage (its example database, its caches) goes to dnspec's cache folder
  (``$XDG_CACHE_HOME/dnspec/hypothesis``, else ``~/.cache/dnspec/hypothesis``), not to a
  ``.hypothesis/`` folder in the working directory; ``HYPOTHESIS_STORAGE_DIRECTORY``, when
  set, is the user asking for another place and is kept.
- Hypothesis draws, with a small probability, constants it collects from the source of
  every "local" module imported (``hypothesis.internal.conjecture.providers.
  _get_local_constants``): the user's builder, its tree, and dnspec itself when run from
  a checkout rather than installed. That makes dnspec's examples depend on unrelated
  files and on how dnspec was installed. Hypothesis (6.170) has no setting for it, so
  during a verify run that private hook returns no local constants (Hypothesis' own
  global constants are still drawn); :data:`LOCAL_CONSTANTS_HOOK` is False where a later
  Hypothesis renamed the hook, and the test suite fails then, so that it is looked at.

Each profile also sizes the statistical properties' workloads (:data:`STATISTICAL_CALLS`):
ci detects a 3% relative departure of every noise parameter, thorough 1%, dev 5%.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

try:  # the private hook Hypothesis draws local constants from (see the module docstring)
    from hypothesis.internal.conjecture import providers as _providers

    LOCAL_CONSTANTS_HOOK = callable(getattr(_providers, "_get_local_constants", None)) and hasattr(
        _providers, "CONSTANTS_CACHE"
    )
except ImportError:  # pragma: no cover - a Hypothesis without it
    _providers, LOCAL_CONSTANTS_HOOK = None, False

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


def load_profile(name: str, pinned_examples: bool = True, shrink: bool = True, outside: bool = False) -> None:
    """Load a dnspec profile.

    ``pinned_examples=False`` drops Hypothesis' explicit phase (dnspec's pinned
    ``@example`` edge cases), so that a failure is found by generation and shrunk:
    ``dnspec verify --no-pinned`` uses it to show and replay the minimal counterexample
    when a pinned edge case failed first. ``shrink=False`` drops the shrink and explain
    phases (``dnspec verify --no-shrink``: the first failing example, as found, fast).
    ``outside=True`` keeps its example database out of the working folder
    (:func:`database_outside_the_tree`: ``dnspec verify``).
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
    if outside:
        name = database_outside_the_tree(name)
    settings.load_profile(name)


def cache_folder() -> Path:
    """Where dnspec keeps Hypothesis' storage: ``$XDG_CACHE_HOME/dnspec/hypothesis``, else
    ``~/.cache/dnspec/hypothesis``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dnspec" / "hypothesis"


@contextlib.contextmanager
def outside_the_tree():
    """For the duration of a verify run: Hypothesis' storage in :func:`cache_folder`
    (unless ``HYPOTHESIS_STORAGE_DIRECTORY`` is set) and no constants drawn from local
    source files (see the module docstring); both put back afterwards."""
    from hypothesis import configuration

    previous_home = configuration.__dict__.get("__hypothesis_home_directory")  # None: not chosen yet
    moved = not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
    if moved:
        configuration.set_hypothesis_home_dir(cache_folder())
    original = _providers._get_local_constants if LOCAL_CONSTANTS_HOOK else None
    if LOCAL_CONSTANTS_HOOK:
        from hypothesis.internal.constants_ast import Constants

        empty = Constants()
        _providers._get_local_constants = lambda: empty
        _providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        if LOCAL_CONSTANTS_HOOK:
            _providers._get_local_constants = original
            _providers.CONSTANTS_CACHE.cache.clear()
        if moved:
            configuration.set_hypothesis_home_dir(previous_home)


def database_outside_the_tree(name: str) -> str:
    """The profile ``name``, with its example database (if it has one) in
    :func:`cache_folder` rather than the working folder; returns the profile to load."""
    from hypothesis.database import DirectoryBasedExampleDatabase

    base = settings.get_profile(name)
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") or base.database is None:
        return name
    settings.register_profile(
        name + "-cached", base, database=DirectoryBasedExampleDatabase(cache_folder() / "examples")
    )
    return name + "-cached"
