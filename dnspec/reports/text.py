"""One verify report as text: the terminal verdict and the markdown document.

The verdict reads top to bottom: the compatibility line; one line per property (holds;
holds except in regimes R, see divergence k; fails in the common regime); then each
divergence once (what goes wrong, where it was raised, the regimes where it happens,
the properties it affects, its minimal example and replay command); the notes; the
one-line summary.
"""

from __future__ import annotations

from dnspec.calling.clean_text import clean
from dnspec.reports.records import STATUS_WORD, DivergenceRecord, OutcomeRecord, VerifyReport, human_size, one_line

EXAMPLE_CHARS = 4000  # the longest example printed on the terminal (the report files hold all)


def outcome_line(record: OutcomeRecord, width: int = 34) -> str:
    """``FAIL      structure        holds except in box_noise_scale == 0 (divergence 2)``"""
    if record.status == "pass":  # a passing check may say how it passed (e.g. the bad-input tally)
        text = one_line(record.message, 200) if record.message else one_line(record.summary, 110, keep_end=False)
    else:
        text = one_line(record.message, 300)
    line = f"{STATUS_WORD.get(record.status, record.status.upper()):<9} {record.label:<{width}} {text}"
    if record.printed_chars:
        line += f"  [the implementation printed {human_size(record.printed_chars)}; captured, not shown]"
    return line


def divergence_block(divergence: DivergenceRecord) -> list[str]:
    """The lines of one divergence."""
    word = "KNOWN" if divergence.known else "DIVERGENCE"
    lines = [
        f"{word} {divergence.number}: {divergence.display_name}, in {divergence.regimes_text}  [id {divergence.id}]"
    ]
    if divergence.known:
        lines.append(f"    accepted ({divergence.accepted_by}): {one_line(divergence.accepted, 400)}")
    lines.append(f"    what: {one_line(divergence.title, 400)}")
    if divergence.where_details:
        lines += [
            f"    raised at: {line.strip()}" if i == 0 else f"               {line.strip()}"
            for i, line in enumerate(divergence.where_details.splitlines())
        ]
    lines.append(f"    properties: {', '.join(divergence.properties)}")
    if divergence.example:
        how = "shrunk by Hypothesis" if divergence.example_shrunk else "as first found, not shrunk"
        if not divergence.example_shrunk and "note=" in divergence.example:
            how = "one of dnspec's pinned cases"
        lines.append(f"    minimal example ({divergence.example_property} in {divergence.example_regime}, {how}):")
        example = divergence.example
        if len(example) > EXAMPLE_CHARS:
            example = example[:EXAMPLE_CHARS] + " ... (the whole example is in the --report file)"
        lines.append(f"      {example}")
    elif divergence.name == "worker process died":
        lines.append("    no example: the worker process died before it could send one back")
    elif divergence.cells:
        lines.append(
            f"    seen on: {divergence.example_property or divergence.cells[0]['property']}'s fixed seeded workload"
        )
    if divergence.replay:
        lines.append(f"    replay: {divergence.replay}")
    return lines


def verdict_lines(report: VerifyReport) -> list[str]:
    """The whole verdict, as printed after the run."""
    if report.error:
        return [clean(f"ERROR     {report.error}")]
    width = max([len(r.label) for r in report.outcomes] + [20])
    lines = [f"compatibility: {report.compatibility}"] if report.compatibility else []
    lines += convention_lines(report)
    lines += [outcome_line(record, width) for record in report.outcomes]
    for divergence in report.divergences:
        lines += [""] + divergence_block(divergence)
    if report.divergences:
        lines.append("")
    return [clean(line) for line in lines + closing_lines(report)]


def convention_lines(report: VerifyReport) -> list[str]:
    """One line per convention the implementation follows (a convention is never a failure)."""
    from dnspec.contract.conventions import convention_lines as lines

    found = lines(report.conventions)
    container = report.conventions.get("output_container")
    if container:
        found.append(f"output container: {container}, read as RT-DETR's 4-tuple")
    if report.conventions.get("no_denoising"):
        found.append("no denoising: a bare None, read as RT-DETR's four Nones")
    return found


def closing_lines(report: VerifyReport) -> list[str]:
    """The notes (signature, hang, printed output), the accepted ids that no longer
    happen, and the one-line verdict."""
    return (
        [f"NOTE      {note}" for note in report.notes]
        + [fixed_line(entry) for entry in report.fixed]
        + [summary_line(report)]
    )


def fixed_line(entry: dict) -> str:
    """``FIXED: boxes.crossed no longer happens; remove it from accept``"""
    source = f" ({entry['source']})" if entry.get("source") else ""
    return f"FIXED: {entry['id']} no longer happens; remove it from accept{source}"


def summary_line(report: VerifyReport) -> str:
    counts = report.counts()
    parts = [
        f"{counts[s]} {word.lower()}"
        for s, word in (("pass", "passed"), ("fail", "failed"), ("advisory", "advisory"), ("skip", "skipped"))
    ]
    if counts.get("known"):
        parts.insert(2, f"{counts['known']} known")
    verdict = "conforms" if counts["fail"] == 0 else "does NOT conform"
    if counts["fail"] == 0 and any(note.startswith("budget: ") for note in report.notes):
        verdict = "NOT fully judged (its budget was spent)"
    known = sum(1 for d in report.divergences if d.known)
    new = len(report.divergences) - known
    if new:
        verdict += f": {new} {'new ' if known else ''}divergence{'s' if new != 1 else ''}"
    if known:
        verdict += f"{',' if new else ''} apart from {known} known divergence{'s' if known != 1 else ''}"
    return f"{report.label}: {verdict} ({', '.join(parts)}) in {report.seconds:.1f} s"


# --- markdown ----------------------------------------------------------------------------


def cell(text: str) -> str:
    """Text safe in a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: VerifyReport) -> str:
    """A verify report as a markdown document."""
    out = [f"# dnspec verify: {report.label}", ""]
    if report.command:
        out += [f"`{report.command}`", ""]
    env = ", ".join(f"{k} {v}" for k, v in report.environment.items())
    opts = ", ".join(f"{k}={v}" for k, v in report.options.items() if v not in (None, "", [], False))
    if env or opts:
        out += [f"Environment: {env or '-'}; options: {opts or '-'}.", ""]
    if report.error:
        out += [f"**Error:** {report.error}", ""]
        return clean("\n".join(out))
    out += [f"**{summary_line(report)}**", ""]
    if report.compatibility:
        out += [f"Compatibility: {report.compatibility}.", ""]
    out += [f"{line[0].upper()}{line[1:]}.\n" for line in convention_lines(report)]
    out += ["| status | property | family | result |", "| --- | --- | --- | --- |"]
    for r in report.outcomes:
        text = r.message or r.summary
        out.append(
            f"| {STATUS_WORD.get(r.status, r.status)} | `{r.label}` | {r.family} | {cell(one_line(text, 300))} |"
        )
    new = [d for d in report.divergences if not d.known]
    known = [d for d in report.divergences if d.known]
    for heading, group in (("Divergences", new), ("Known divergences (accepted)", known)):
        if not group:
            continue
        out += ["", f"## {heading}"]
        for d in group:
            out += ["", f"### {d.number}. `{d.display_name}`, in {d.regimes_text}", "", f"Id: `{d.id}`", ""]
            if d.known:
                out += [f"Accepted ({d.accepted_by}): {d.accepted}", ""]
            out += [d.title, ""]
            if d.where_details:
                out += ["Raised at:", "", "```", d.where_details, "```", ""]
            out += [f"Properties: {', '.join(f'`{p}`' for p in d.properties)}.", ""]
            if d.example:
                how = "shrunk by Hypothesis" if d.example_shrunk else "not shrunk"
                out += [
                    f"Minimal example (`{d.example_property}` in {d.example_regime}, {how}):",
                    "",
                    "```python",
                    d.example,
                    "```",
                    "",
                ]
            if d.replay:
                out += [f"Replay: `{d.replay}`", ""]
            if len(d.cells) > 1:
                out += ["Where each property saw it:", ""]
                out += [f"- `{c['property']}` in {c['regime']}: {cell(one_line(c['message'], 300))}" for c in d.cells]
    advisories = [r for r in report.outcomes if r.status == "advisory"]
    if advisories:
        out += ["", "## Advisories"]
        for r in advisories:
            out += ["", f"### `{r.label}`", "", r.details.rstrip() or r.message]
    if report.fixed:
        out += ["", "## Fixed", ""] + [f"- {cell(fixed_line(entry))}" for entry in report.fixed]
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {cell(note)}" for note in report.notes]
    if report.captured_output.get("chars"):
        out += [
            "",
            "## Output printed by the implementation",
            "",
            f"{human_size(report.captured_output['chars'])} in all (captured, not shown on the terminal). Beginning:",
            "",
            "```",
            *[
                line if len(line) <= 200 else line[:197] + "..."
                for line in report.captured_output.get("head", "").splitlines()[:40]
            ],
            "```",
        ]
    return clean("\n".join(out)) + "\n"
