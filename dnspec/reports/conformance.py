"""The conformance table of ``dnspec matrix``: one row per implementation, one column per
property family, plus the compatibility level; every divergence named in its cells and
listed in full below the table.

The columns are ``dnspec.checks.suite.FAMILIES`` in registry order, followed by any other family
that appears in the reports (so a family added to the registry, or reported by a newer
dnspec, gets its column without a change here).
"""

from __future__ import annotations

from dnspec.reports.records import STATUS_WORD, OutcomeRecord, VerifyReport, one_line
from dnspec.reports.text import cell

FIXED_COLUMNS = ("compatibility", "lineage", "empty batch")


def matrix_columns(reports: list[VerifyReport]) -> list[tuple[str, str]]:
    """(family, title) per family column: the registry's families, then any other family
    some report has, each once, in that order."""
    from dnspec.checks.suite import FAMILIES

    columns = [(family, family) for family in FAMILIES]
    seen = {family for family, _ in columns}
    for report in reports:
        for record in report.outcomes:
            if record.family not in seen:
                seen.add(record.family)
                columns.append((record.family, record.family))
    return columns


def family_cell(records: list[OutcomeRecord], report: VerifyReport | None = None) -> str:
    """One cell: a family's properties aggregated. fail if any fails (naming each
    divergence and where it happens), else advisory if any advisory holds, else pass
    (noting skipped variants), else skipped (with the reason); '-' if none ran."""
    if not records:
        return "-"
    by_status = {s: [r for r in records if r.status == s] for s in STATUS_WORD}
    if by_status["fail"]:
        numbers = list(dict.fromkeys(n for r in by_status["fail"] for n in r.divergences))
        named = [report.divergence(n) for n in numbers] if report is not None else []
        if named and all(named):
            return "**fail**: " + "; ".join(
                f"D{d.number} `{d.display_name}` ({d.regimes_text})" for d in named if not d.known
            )
        first = by_status["fail"][0]
        more = f" (+{len(by_status['fail']) - 1} more)" if len(by_status["fail"]) > 1 else ""
        return f"**fail**: `{first.label}`: {one_line(first.message)}{more}"
    if by_status["known"]:
        numbers = list(dict.fromkeys(n for r in by_status["known"] for n in r.divergences))
        named = [report.divergence(n) for n in numbers] if report is not None else []
        if named and all(named):
            return "KNOWN: " + "; ".join(f"D{d.number} `{d.id}`" for d in named)
        return "KNOWN: " + ", ".join(f"`{r.label}`" for r in by_status["known"])
    if by_status["advisory"]:
        return "advisory: " + ", ".join(f"`{r.label}`" for r in by_status["advisory"])
    if by_status["pass"]:
        skipped = by_status["skip"]
        notes = [r.message for r in by_status["pass"] if r.message]
        return (
            "pass"
            + (f": {one_line(notes[0])}" if notes else "")
            + (f" ({', '.join(r.label for r in skipped)} skipped)" if skipped else "")
        )
    return f"skipped: {one_line(by_status['skip'][0].message)}"


def lineage_cell(report: VerifyReport) -> str:
    """The lineages whose builder it is bit-compatible with under the same torch seed
    (:mod:`dnspec.contract.lineages`), and the contract it was judged by when not rtdetr."""
    from dnspec.contract.lineages import CONTRACTS

    names = [CONTRACTS[n].builder if n in CONTRACTS else n for n in dict.fromkeys(report.lineages)]
    contract = report.options.get("contract")
    judged = f" (judged by contract {contract})" if contract else ""
    return (", ".join(names) or "-") + judged


def conformance_table(reports: list[VerifyReport], against: str | None = None) -> str:
    """The markdown conformance table: one row per implementation, one column per family
    (and one comparing each with ``against``, the baseline of ``dnspec matrix --against``)."""
    columns = matrix_columns(reports)
    extra = [f"vs {against}"] if against else []
    header = "| implementation | " + " | ".join([*FIXED_COLUMNS, *extra, *(title for _, title in columns)]) + " |"
    rule = "| --- |" + " --- |" * (len(columns) + len(FIXED_COLUMNS) + len(extra))
    rows = [header, rule]
    for report in reports:
        if report.error:
            cells = [f"**error**: {one_line(report.error)}"] + ["-"] * (
                len(columns) + len(FIXED_COLUMNS) + len(extra) - 1
            )
        else:
            from dnspec.contract.conventions import SHORT

            convention = report.conventions.get("empty_batch")
            from dnspec.running.verdict import COMPATIBILITY

            level = COMPATIBILITY.get(report.compatibility_level, report.compatibility)
            cells = [level or "-", lineage_cell(report), SHORT.get(convention, convention) if convention else "-"]
            if against:
                cells.append(one_line(report.options.get("against_compatibility", "(the baseline)"), 200))
            cells += [family_cell([r for r in report.outcomes if r.family == family], report) for family, _ in columns]
        rows.append(f"| {cell(report.label)} | " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(rows)


def matrix_markdown(
    reports: list[VerifyReport], command: str = "", environment: dict | None = None, against: str | None = None
) -> str:
    """The conformance table with the command that made it and, per implementation, each
    divergence in full, the advisories, skips and notes."""
    out = ["# dnspec conformance matrix", ""]
    if command:
        out += [f"Regenerate with `{command}`.", ""]
    if environment:
        out += ["Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()) + ".", ""]
    out += [conformance_table(reports, against), ""]
    out += [
        "Cells: **fail** names each divergence (Dk, listed below, by its id) and the regimes where it happens; "
        "KNOWN: divergences accepted in the project's `[tool.dnspec]` configuration; advisory: "
        "upstream advisories this implementation shares (reported, not failing unless `--strict`); pass; skipped "
        "or not comparable (with the reason).",
        "",
    ]
    detail = []
    for report in reports:
        interesting = [r for r in report.outcomes if r.status in ("advisory", "skip")]
        if not (report.error or report.divergences or interesting or report.notes or report.fixed):
            continue
        detail += ["", f"### {report.label}", ""]
        if report.error:
            detail.append(f"- error: {report.error}")
        for d in report.divergences:
            known = f"KNOWN ({cell(one_line(d.accepted, 300))}): " if d.known else ""
            detail.append(
                f"- D{d.number} `{d.id}` in {d.regimes_text} ({', '.join(d.properties)}): "
                f"{known}{cell(one_line(d.title, 600))}"
            )
        detail += [f"- FIXED `{e['id']}`: no longer happens; remove it from accept" for e in report.fixed]
        for r in interesting:
            detail.append(f"- {STATUS_WORD[r.status]} `{r.label}`: {cell(one_line(r.message, 2000))}")
        detail += [f"- note: {cell(note)}" for note in report.notes]
    if detail:
        out += ["## Divergences, advisories, skips and notes"] + detail
    return "\n".join(out).rstrip() + "\n"
