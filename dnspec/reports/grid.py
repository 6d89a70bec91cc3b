"""The property x regime grid of a verify report: one cell per property (variant) and
input regime it was judged in, or one "fixed workload" cell for a statistical property
or an advisory. The JUnit XML report makes each cell a test case; the HTML report draws
the grid as a heat map.

A cell's status is the property's status in that regime as the run recorded it
(``OutcomeRecord.regimes``): "pass", "fail" (a divergence was seen there), "skip" (the
property did not apply; every cell of a skipped property) or, for a fixed workload,
"advisory", or "known" (it failed there, but only by divergences the project accepts:
:mod:`dnspec.running.accept`). A property that failed although no regime of it is marked failing (every
call it makes is in a regime it forces, so its own regimes could not judge it) fails in
the cells where its divergences were seen, so that a failing property always has a
failing cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnspec.reports.records import DivergenceRecord, OutcomeRecord, VerifyReport

FIXED = "fixed workload"
GENERATED_KINDS = ("contract", "agreement")


@dataclass
class GridCell:
    """One property in one regime."""

    outcome: OutcomeRecord
    regime: str
    status: str  # "pass" | "fail" | "skip" | "advisory" | "known"
    divergences: list = field(default_factory=list)  # numbers of the divergences seen here
    message: str = ""  # why it failed or was skipped, one paragraph

    @property
    def name(self) -> str:
        """The test-case name: ``'boxes[common]'``, ``'dtype_agreement[bfloat16][tiny_box]'``."""
        return f"{self.outcome.label}[{self.regime}]"


def swept_regimes(report: VerifyReport) -> list[str]:
    """The regimes the run swept (every regime, when no generated property ran)."""
    if report.regimes:
        return list(report.regimes)
    from dnspec.generation.regimes import NAMES

    return list(report.options.get("regimes") or NAMES)


def columns(report: VerifyReport) -> list[str]:
    """The grid's columns: the swept regimes, then the fixed workload."""
    cols = list(report.regimes)
    if any(not _generated(o) for o in report.outcomes) or not cols:
        cols.append(FIXED)
    return cols


def _generated(outcome: OutcomeRecord) -> bool:
    return outcome.kind in GENERATED_KINDS and FIXED not in outcome.regimes


def _seen_in(report: VerifyReport, outcome: OutcomeRecord, regime: str) -> list[tuple[DivergenceRecord, str]]:
    """(divergence, message) for each divergence of ``outcome`` seen in ``regime``."""
    found = []
    for number in outcome.divergences:
        divergence = report.divergence(number)
        if divergence is None:
            continue
        for cell in divergence.cells:
            if cell["property"] == outcome.label and cell["regime"] == regime:
                found.append((divergence, cell["message"]))
                break
    return found


def cells_of(report: VerifyReport, outcome: OutcomeRecord) -> list[GridCell]:
    """The cells of one property, in column order."""
    if outcome.status == "skip":
        regimes = swept_regimes(report) if outcome.kind in GENERATED_KINDS else [FIXED]
        return [GridCell(outcome, regime, "skip", message=outcome.message) for regime in regimes]
    if not _generated(outcome):
        divergences = [report.divergence(n) for n in outcome.divergences]
        message = (
            _failure_text(outcome, [(d, d.title) for d in divergences if d])
            if outcome.status == "fail"
            else (outcome.details or outcome.message)
        )
        return [GridCell(outcome, FIXED, outcome.status, list(outcome.divergences), message)]
    order = {regime: i for i, regime in enumerate(swept_regimes(report))}
    regimes = sorted(outcome.regimes, key=lambda r: order.get(r, len(order)))
    statuses = {regime: "fail" if outcome.regimes[regime] == "known" else outcome.regimes[regime] for regime in regimes}
    if outcome.status in ("fail", "known") and "fail" not in statuses.values():
        seen = [r for r in regimes if _seen_in(report, outcome, r)]
        for regime in seen or regimes[:1]:
            statuses[regime] = "fail"
    cells = []
    for regime in regimes:
        if statuses[regime] != "fail":
            cells.append(GridCell(outcome, regime, statuses[regime]))
            continue
        seen = _seen_in(report, outcome, regime)
        if not seen:
            seen = [(d, d.title) for d in (report.divergence(n) for n in outcome.divergences) if d]
        status = "known" if seen and all(d.known for d, _ in seen) else "fail"
        cells.append(GridCell(outcome, regime, status, [d.number for d, _ in seen], _failure_text(outcome, seen)))
    return cells


def _failure_text(outcome: OutcomeRecord, seen) -> str:
    parts = []
    for divergence, message in seen:
        known = f"KNOWN, accepted: {divergence.accepted}; " if divergence.known else ""
        lines = [
            f"divergence {divergence.number} ({divergence.display_name}, in {divergence.regimes_text}; "
            f"id {divergence.id}): {known}{message}"
        ]
        if divergence.where_details:
            lines.append(f"raised at: {divergence.where_details}")
        if divergence.example:
            lines.append(
                f"minimal example ({divergence.example_property} in {divergence.example_regime}):\n{divergence.example}"
            )
        if divergence.replay:
            lines.append(f"replay: {divergence.replay}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or outcome.message


def grid(report: VerifyReport) -> list[tuple[OutcomeRecord, dict]]:
    """One row per property: (outcome, {column: GridCell}) (a column it has no cell in is
    absent: not run there)."""
    return [(outcome, {cell.regime: cell for cell in cells_of(report, outcome)}) for outcome in report.outcomes]
