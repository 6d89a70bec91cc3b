"""The README describes what the code has: every registered property in its table, every
input regime, every empty-batch convention and every built-in SPEC family it names."""

from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_property_is_in_the_readme_table():
    from dnspec.checks.suite import PROPERTIES

    rows = {line.split("|")[1].strip().strip("`") for line in README.splitlines() if line.startswith("| `")}
    assert {p.name for p in PROPERTIES} <= rows, {p.name for p in PROPERTIES} - rows


def test_every_regime_is_in_the_readme_with_its_title():
    from dnspec.generation.regimes import REGIMES

    for regime in REGIMES:
        assert f"| `{regime.name}` | {regime.title} |" in README, regime.name


@pytest.mark.parametrize("name", ["four Nones", "dummy group", "meta only", "empty group"])
def test_every_empty_batch_convention_is_described(name):
    assert f"| {name} |" in README


def test_the_fast_builders_are_named():
    from dnspec.implementations.fast import builtin_implementations

    for name in builtin_implementations():
        assert f"`{name}`" in README, name
