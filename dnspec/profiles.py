"""Hypothesis settings profiles for dnspec, registered in one place.

``ci``        Hypothesis' built-in ci profile (derandomized, no deadline, no database,
              replay blobs printed), extended with dnspec's example count; loaded
              automatically when the CI environment variable is set.
``dev``       the default: random seeds, the example database replays failures first.
``thorough``  10x dev's examples, for a release or a new implementation.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEV_EXAMPLES = 60
CI_EXAMPLES = 60
PROFILES = ("ci", "dev", "thorough")

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def register_profiles() -> None:
    settings.register_profile("ci", settings.get_profile("ci"), max_examples=CI_EXAMPLES, **_COMMON)
    settings.register_profile("dev", max_examples=DEV_EXAMPLES, **_COMMON)
    settings.register_profile("thorough", max_examples=10 * DEV_EXAMPLES, **_COMMON)


def default_profile() -> str:
    """``ci`` when the CI environment variable is set (as Hypothesis itself does), else ``dev``."""
    return "ci" if os.environ.get("CI") else "dev"


def load_profile(name: str) -> None:
    if name not in PROFILES:
        raise ValueError(f"profile: unknown Hypothesis profile {name!r}; choose one of {', '.join(PROFILES)}")
    register_profiles()
    settings.load_profile(name)
