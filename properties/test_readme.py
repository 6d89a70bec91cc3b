"""The documentation describes what the code has: every registered property in the table of
docs/properties.md, every input regime in docs/regimes.md, every empty-batch convention in
docs/conventions.md and every fast builder it names; and the README stays a front door (at
most about 250 lines) whose map links every page of docs/."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_every_property_is_in_the_properties_table():
    from dnspec.checks.suite import PROPERTIES

    page = _page("properties.md")
    rows = {line.split("|")[1].strip().strip("`") for line in page.splitlines() if line.startswith("| `")}
    assert {p.name for p in PROPERTIES} <= rows, {p.name for p in PROPERTIES} - rows


def test_every_regime_is_in_the_regimes_page_with_its_title():
    from dnspec.generation.regimes import REGIMES

    page = _page("regimes.md")
    for regime in REGIMES:
        assert f"| `{regime.name}` | {regime.title} |" in page, regime.name


@pytest.mark.parametrize("name", ["four Nones", "dummy group", "meta only", "empty group"])
def test_every_empty_batch_convention_is_described(name):
    assert f"| {name} |" in _page("conventions.md")


def test_the_fast_builders_are_named():
    from dnspec.implementations.fast import builtin_implementations

    page = _page("properties.md")
    for name in builtin_implementations():
        assert f"`{name}`" in page, name


def test_the_readme_is_a_front_door_that_maps_every_page():
    assert len(README.splitlines()) <= 250
    for section in ("## Set up and run", "## Checking your fork", "## Using it in CI", "## Reading a verdict"):
        assert section in README, section
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert len(pages) >= 10
    unlinked = [name for name in pages if f"(docs/{name})" not in README]
    assert not unlinked, unlinked
