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
    """Of a :class:`dnspec.running.sweeps.Cell`: "fail" when a failure in this cell was on a call in the cell's regime (the
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


def compatibility(
    impl,
    outcomes: list[Outcome],
    divergences: list[Divergence],
    same_seed,
    *,
    contract: str | None = None,
    lineage_tallies: dict | None = None,
    against=None,
    known: frozenset = frozenset(),
    distributions=None,
) -> tuple[str, str]:
    """How close to the oracle the implementation is, from the checks already run (never a
    failure by itself): (a key of :data:`COMPATIBILITY`, the line a verdict prints).

    The oracle is RT-DETR's builder, the lineage ``contract`` asked for by name, or THEIRS
    (``against``, an Implementation). Divergences whose numbers are in ``known`` (shared
    with THEIRS) do not make it depart. Without a contract or THEIRS, ``lineage_tallies``
    (lineage -> [cases with its numbers, cases compared]) name every lineage the builder
    is bit-compatible with under the same torch seed, or the nearest one.
    ``distributions`` (THEIRS only): None when the two-sample tests did not run, else a
    list of the tests that failed (empty: the same distributions).

    Against RT-DETR or a lineage, "same distributions" is certified only when every
    registered statistical property ran and passed, and the line names its resolution
    (:func:`resolution`); with some skipped or left out (``--only``) the builder gets
    "unchecked" with the missing properties named. Bit-compatibility needs no statistics."""
    from dnspec.contract import lineages

    oracle = getattr(against, "name", None) or lineages.get(contract).builder
    new = [d for d in divergences if d.number not in known]
    failed = any(o.status == "fail" and set(o.divergences) - set(known) for o in outcomes) or any(
        o.status == "fail" and not o.divergences for o in outcomes
    )
    recognised = _lineage_suffix(lineage_tallies or {}) if contract is None and against is None else ""
    if new or failed:
        return "departs", f"departs from {oracle} (see divergences){recognised}"
    if impl.fixes_advisories and against is None:
        return (
            "by_design",
            f"departs from {oracle} by design: fixes its advisories, and conforms to the contract otherwise",
        )
    matches, compared = same_seed
    if compared and matches == compared:
        also = _also_bit_compatible(lineage_tallies or {}, contract) if against is None else ""
        return "bit_compatible", (
            f"bit-compatible with {oracle} under the same torch seed (identical outputs on {compared} generated "
            f"cases){also}"
        )
    how = f"; the same torch seed gives other numbers on {compared - matches} of {compared} cases" if compared else ""
    if against is not None:
        if distributions is None:
            return "unchecked", f"conforms; its distributions were not compared with {oracle}"
        if distributions:
            return "departs", f"departs from {oracle}: {'; '.join(distributions)}"
        return "same_distributions", f"same distributions as {oracle}{how}"
    statistical = [o for o in outcomes if o.prop.kind == "statistical"]
    missing = [name for name in statistical_properties() if name not in {o.prop.name for o in statistical}]
    missing += [o.prop.name for o in statistical if o.status != "pass"]
    if statistical and not missing:
        return "same_distributions", f"same distributions as {oracle}{how}{recognised}; {resolution()}"
    if len(missing) < len(statistical_properties()):
        return "unchecked", (
            f"conforms to the contract; its distributions were checked only in part ({', '.join(missing)} "
            f"skipped or not run), so no distribution certificate{how}"
        )
    return "unchecked", "conforms to the contract; its distributions were not checked (no statistical property ran)"


def statistical_properties() -> list[str]:
    """Every registered statistical property: all of them must pass for the distribution certificate."""
    from dnspec.checks.suite import PROPERTIES, STATISTICAL

    return [p.name for p in PROPERTIES if p.kind == STATISTICAL]


def resolution(profile: str | None = None) -> str:
    """How sure the distribution certificate is on ``profile`` (default: the loaded one):
    its statistical workloads detect a relative departure of STATISTICAL_EFFECT[profile] in
    any noise parameter with probability >= 99% (dnspec.checks.power; properties/
    test_statistics.py holds the workloads to it)."""
    from dnspec.checks.distributions import FALSE_ALARM
    from dnspec.generation import profiles

    profile = profile or profiles.statistical_profile()
    effect = profiles.STATISTICAL_EFFECT[profile]
    return (
        f"resolution: no departure of {effect:.0%} or more in any noise parameter, at false-alarm "
        f"{FALSE_ALARM:.0e} per property (profile {profile})".replace("e-0", "e-")
    )


def bit_compatible_lineages(lineage_tallies: dict) -> list[str]:
    """The lineages whose reference gave the builder's numbers on every case compared."""
    return [name for name, (matches, compared) in lineage_tallies.items() if compared and matches == compared]


def _lineage_suffix(lineage_tallies: dict) -> str:
    """'; bit-compatible with D-FINE's builder (crossed negatives keep |w|; ...)' for each
    lineage other than RT-DETR whose numbers the builder gives on every compared case,
    else the nearest lineage and how often it agreed; '' when nothing was compared."""
    from dnspec.contract import lineages

    others = [n for n in bit_compatible_lineages(lineage_tallies) if n != lineages.DEFAULT]
    if others:
        return "; " + "; ".join(
            f"bit-compatible with {lineages.get(n).builder} ({lineages.get(n).departure})" for n in others
        )
    compared = {n: t for n, t in lineage_tallies.items() if t[1]}
    if not compared or lineages.DEFAULT in bit_compatible_lineages(lineage_tallies):
        return ""
    name, (matches, total) = max(compared.items(), key=lambda item: item[1][0] / item[1][1])
    rtdetr = compared.get(lineages.DEFAULT, (0, 1))
    if name == lineages.DEFAULT or matches / total <= rtdetr[0] / rtdetr[1]:
        return ""  # RT-DETR is the nearest: the divergences say how it departs
    contract = lineages.get(name)
    return (
        f"; nearest lineage: {contract.builder} ({contract.departure}), the same numbers on {matches} of {total} cases"
    )


def _also_bit_compatible(lineage_tallies: dict, contract: str | None) -> str:
    from dnspec.contract import lineages

    others = [n for n in bit_compatible_lineages(lineage_tallies) if n != (contract or lineages.DEFAULT)]
    return "".join(f"; also with {lineages.get(n).builder}" for n in others)
