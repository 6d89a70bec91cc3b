"""A run's verdict, property by property: how each property fared in each regime, the
line that says so, and how close to RT-DETR the implementation is.

A property's line, per divergence it shows: *fails in the common regime* when one of its
failing calls was in the common regime; *not judged* when every call of the property is
in the divergence's regime (the noise-free check and a scale-0 crash); *holds except in
R*, the smallest regime sets of its failing calls, otherwise; a statistical property or
advisory *fails on its fixed seeded batch*. A regime's cell fails when a failure in it was
on a call in that regime (the property's forced regimes aside).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnspec.checks.suite import GENERATED_KINDS as GENERATED
from dnspec.checks.suite import Property, label
from dnspec.generation import regimes as regime_registry
from dnspec.generation.strategies import REGIME_SETS
from dnspec.running.divergences import Divergence, Finding


@dataclass
class Outcome:
    """How one property (one variant) fared on one implementation."""

    prop: Property
    variant: object
    status: str  # "pass" | "fail" | "skip" | "advisory"
    message: str = ""
    details: str = ""
    seconds: float = 0.0
    regimes: dict = field(default_factory=dict)  # regime -> "pass" | "fail" | "skip"
    divergences: list = field(default_factory=list)  # numbers of the divergences it shows

    @property
    def label(self) -> str:
        return label(self.prop, self.variant)


def cell_status(prop: Property, cell) -> str:
    """Of a :class:`dnspec.running.runner.Cell`: "fail" when a failure in this cell was on a call in the cell's regime (the
    property's forced regimes aside): a check's noise-free part failing on a case of the
    common regime is a failure of box_noise_scale == 0, reported there, not here."""
    own = REGIME_SETS[cell.regime] | prop.forces
    return "fail" if any(f.regimes <= own for f in cell.findings.values()) else "pass"


def generated_outcome(prop, variant, by_regime: dict, divergences, seconds) -> Outcome:
    name = label(prop, variant)
    regimes = {regime: cell_status(prop, cell) for regime, cell in by_regime.items()}
    numbers = [d.number for d in divergences if any(f.label == name for f in d.findings)]
    if not numbers:
        judged = sum(cell.judged for cell in by_regime.values())
        return Outcome(
            prop,
            variant,
            "pass",
            "",
            seconds=seconds,
            regimes=regimes,
            details=f"held on {judged} cases in {len(by_regime)} regimes",
        )
    lines = []
    details = []
    for divergence in divergences:
        if divergence.number not in numbers:
            continue
        mine = [f for f in divergence.findings if f.label == name]
        lines.append(property_line(prop, divergence, mine))
        details.append(f"divergence {divergence.number}: {mine[0].message}")
    return Outcome(prop, variant, "fail", "; ".join(lines), "\n".join(details), seconds, regimes, numbers)


def property_line(prop: Property, divergence: Divergence, mine: list[Finding]) -> str:
    """How a property fared against one divergence, in words."""
    sets = regime_registry.minimal_regime_sets(f.regimes for f in mine)
    where = ", ".join(regime_registry.describe_set(s) for s in sets)
    if prop.kind not in GENERATED:
        place = "" if all(not s for s in sets) else f", a case in {where}"
        return f"fails on its fixed seeded batch{place} (divergence {divergence.number})"
    if any(not s for s in sets):
        return f"fails in the common regime (divergence {divergence.number})"
    if prop.forces and all(s <= prop.forces for s in divergence.regime_sets):
        return (
            f"not judged: every call of this property is in {regime_registry.describe_set(prop.forces)}, "
            f"where divergence {divergence.number} happens"
        )
    return f"holds except in {where} (divergence {divergence.number})"


# how close to RT-DETR, in increasing distance: the short name a conformance table shows
COMPATIBILITY = {
    "bit_compatible": "bit-compatible (same seed, same numbers)",
    "same_distributions": "same distributions",
    "by_design": "departs by design (fixes the advisories)",
    "unchecked": "contract holds; distributions not checked",
    "departs": "departs (see divergences)",
}


def compatibility(impl, outcomes: list[Outcome], divergences: list[Divergence], same_seed) -> tuple[str, str]:
    """How close to RT-DETR the implementation is, from the checks already run (never a
    failure by itself): (a key of :data:`COMPATIBILITY`, the line a verdict prints)."""
    if divergences or any(o.status == "fail" for o in outcomes):
        return "departs", "departs from RT-DETR (see divergences)"
    if impl.fixes_advisories:
        return (
            "by_design",
            "departs from RT-DETR by design: fixes its advisories, and conforms to the contract otherwise",
        )
    matches, compared = same_seed
    if compared and matches == compared:
        return "bit_compatible", (
            f"bit-compatible with RT-DETR under the same torch seed (identical outputs on {compared} generated cases)"
        )
    statistical = [o for o in outcomes if o.prop.kind == "statistical"]
    if statistical and all(o.status == "pass" for o in statistical):
        how = (
            f"; the same torch seed gives other numbers on {compared - matches} of {compared} cases" if compared else ""
        )
        return "same_distributions", f"same distributions as RT-DETR{how}"
    return "unchecked", "conforms to the contract; its distributions were not checked (no statistical property ran)"
