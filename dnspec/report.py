"""Rendering what ``dnspec verify`` found: terminal lines, markdown, JSON, and the
conformance table of ``dnspec matrix``.

A :class:`VerifyReport` is the whole result of one verify run as plain data (it is what
``--report FILE.json`` holds, and what ``dnspec matrix`` reads back from each
subprocess); :class:`OutcomeRecord` is one property's :class:`dnspec.suite.Outcome` in
that form. Everything here works on records, never on live implementations, so a
report written by another process (or another dnspec version) renders the same way.

The conformance table has one column per property family. The columns are
``dnspec.suite.FAMILIES`` in registry order, followed by any other family that appears
in the reports (so a family added to the registry, or reported by a newer dnspec, gets
its column without a change here); :data:`EXTRA_FAMILIES` pins the position of a family
that is not in the registry.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATUS_WORD = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "advisory": "ADVISORY"}
STATUS_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "advisory": "magenta"}

# Families reported outside dnspec.suite.PROPERTIES, as (family, column title); one line each.
EXTRA_FAMILIES: tuple[tuple[str, str], ...] = ()

DETAIL_LINES = 40  # lines of a failure's details shown on the terminal (the report files hold all)
CELL_CHARS = 90  # length of a one-line reason in a conformance-table cell


@dataclass
class OutcomeRecord:
    """One property (one variant) on one implementation, as data."""

    property: str
    label: str
    family: str
    kind: str
    summary: str
    status: str
    message: str = ""
    details: str = ""
    seconds: float = 0.0
    printed_chars: int = 0
    replay: str = ""
    pinned_example: str = ""  # the failure was first seen on this pinned edge case (then shrunk past it)
    shrunk: bool = True  # False under --no-shrink: the counterexample is the first one found

    @classmethod
    def from_outcome(cls, outcome, printed_chars: int = 0, replay: str = "") -> "OutcomeRecord":
        return cls(
            property=outcome.prop.name,
            label=outcome.label,
            family=outcome.prop.family,
            kind=outcome.prop.kind,
            summary=outcome.prop.summary,
            status=outcome.status,
            message=full_message(outcome.message, outcome.details),
            details=outcome.details,
            seconds=round(outcome.seconds, 3),
            printed_chars=printed_chars,
            replay=replay,
        )


@dataclass
class VerifyReport:
    """Everything one ``dnspec verify`` run found (the content of ``--report FILE.json``)."""

    spec: str
    command: str = ""
    implementation: dict = field(default_factory=dict)  # name, label, version, description, ...
    options: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)  # dnspec, torch, python versions
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each: signature, hang, printed output
    captured_output: dict = field(default_factory=dict)  # chars, head, tail
    error: str = ""  # the one-line reason when nothing could be run (SPEC not loadable, ...)
    exit_code: int = 0
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return self.implementation.get("label") or self.spec

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUS_WORD}
        for record in self.outcomes:
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def to_dict(self) -> dict:
        data = asdict(self)
        data["summary"] = self.counts()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "VerifyReport":
        data = dict(data)
        data.pop("summary", None)
        known = set(cls.__dataclass_fields__)
        outcomes = [OutcomeRecord(**{k: v for k, v in o.items() if k in OutcomeRecord.__dataclass_fields__}) for o in data.pop("outcomes", [])]
        return cls(outcomes=outcomes, **{k: v for k, v in data.items() if k in known})


# --- sizes and short text ----------------------------------------------------------------


def human_size(chars: int) -> str:
    """1536 -> '1.5 kB' (characters counted as bytes; close enough for a log)."""
    size = float(chars)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{chars} B"


def one_line(text: str, limit: int = CELL_CHARS, keep_end: bool = True) -> str:
    """Whitespace collapsed; if too long, the middle is cut (the end of a failure
    message often says what was expected), or the end with ``keep_end=False``."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    tail = max(0, min(limit // 3, limit - 20)) if keep_end else 0
    return line[: limit - tail - 5] + " ... " + line[len(line) - tail:] if tail else line[: limit - 3] + "..."


# lines of an outcome's details that start Hypothesis' notes, not the failure's own message
NOTE_PREFIXES = ("Falsifying", "Failing", "Explanation:", "You can reproduce", "(note:", "Trying example", "Draw ", "Unreliable")


def full_message(message: str, details: str) -> str:
    """The failure's whole message on one line. The suite keeps only its first line,
    which cuts a message that embeds a multi-line repr (a tensor) before the part that
    says what was expected; the details hold all of it, before Hypothesis' notes."""
    lines = details.splitlines()
    if not lines or not message:
        return message
    body = []
    for line in lines:
        if body and line.startswith(NOTE_PREFIXES):
            break
        body.append(line)
    text = re.sub(r"^[A-Za-z_][\w.]*: ", "", " ".join(" ".join(body).split()), count=1)
    return text if text.startswith(" ".join(message.split()).rstrip(".")[:40]) and len(text) > len(message) else message


GENERATED_EXAMPLE = ("Falsifying example", "Failing test case")  # Hypothesis' wording, older and newer
PINNED_EXAMPLE = ("Falsifying explicit example", "Failing explicit example")


def counterexample(details: str) -> str:
    """The part of an outcome's details that shows the failing input: Hypothesis'
    'Falsifying example' note (or the explicit example that failed), or '' if none."""
    lines = details.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(GENERATED_EXAMPLE + PINNED_EXAMPLE):
            return "\n".join(lines[i:])
    return ""


# --- terminal lines ----------------------------------------------------------------------


def outcome_line(record: OutcomeRecord, width: int = 34) -> str:
    """``FAIL      attention_mask                  attn_mask[200, 0] is False: ...``"""
    if record.status == "pass":  # a passing check may say how it passed (e.g. the bad-input tally)
        text = one_line(record.message, 200) if record.message else one_line(record.summary, 110, keep_end=False)
    else:
        text = one_line(record.message, 200)
    line = f"{STATUS_WORD.get(record.status, record.status.upper()):<9} {record.label:<{width}} {text}"
    if record.printed_chars:
        line += f"  [the implementation printed {human_size(record.printed_chars)}; captured, not shown]"
    return line


def failure_block(record: OutcomeRecord, max_lines: int = DETAIL_LINES) -> list[str]:
    """The lines under a failure: the minimal counterexample (or the details) and how to replay it."""
    example = counterexample(record.details)
    body = example or record.details
    # Hypothesis' "add @reproduce_failure(...) to your test function" means nothing on a command line
    lines = [line for line in body.splitlines() if not line.startswith("You can reproduce this test case by temporarily adding")]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines in the --report file)"]
    title = "minimal counterexample (shrunk by Hypothesis):" if example else "details:"
    if example and not record.shrunk:
        title = "counterexample (as found, not shrunk: --no-shrink):"
    if example.startswith(PINNED_EXAMPLE):
        title = "counterexample (one of dnspec's pinned edge cases; Hypothesis does not shrink those):"
    if not example and len(lines) <= 1 and one_line(body, 10**6).endswith(one_line(record.message, 10**6).rstrip(".")):
        lines, title = [], ""  # the details say no more than the line above
    out = ([f"    {title}"] if title else []) + [f"      {line}" for line in lines]
    if record.pinned_example:
        out.append(f"    (first seen on {record.pinned_example}; the property was run again without the pinned cases to shrink it)")
    if record.replay:
        out.append(f"    replay: {record.replay}")
    return out


def terminal_lines(report: VerifyReport) -> list[str]:
    """The whole report as plain lines (what ``dnspec verify`` prints after the run)."""
    if report.error:
        return [f"ERROR     {report.error}"]
    width = max([len(r.label) for r in report.outcomes] + [20])
    lines = []
    for record in report.outcomes:
        lines.append(outcome_line(record, width))
        if record.status == "fail":
            lines.extend(failure_block(record))
    return lines + closing_lines(report)


def closing_lines(report: VerifyReport) -> list[str]:
    """The notes (signature, hang, printed output) and the one-line verdict."""
    return [f"NOTE      {note}" for note in report.notes] + [summary_line(report)]


def summary_line(report: VerifyReport) -> str:
    counts = report.counts()
    parts = [f"{counts[s]} {word.lower()}" for s, word in (("pass", "passed"), ("fail", "failed"), ("advisory", "advisory"), ("skip", "skipped"))]
    verdict = "conforms" if counts["fail"] == 0 else "does NOT conform"
    return f"{report.label}: {verdict} ({', '.join(parts)}) in {report.seconds:.1f} s"


# --- markdown ----------------------------------------------------------------------------


def _cell(text: str) -> str:
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
        return "\n".join(out)
    out += [f"**{summary_line(report)}**", "", "| status | property | family | result |", "| --- | --- | --- | --- |"]
    for r in report.outcomes:
        text = r.message or r.summary
        out.append(f"| {STATUS_WORD.get(r.status, r.status)} | `{r.label}` | {r.family} | {_cell(one_line(text, 300))} |")
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {_cell(note)}" for note in report.notes]
    failures = [r for r in report.outcomes if r.status in ("fail", "advisory")]
    if failures:
        out += ["", "## Failures and advisories"]
        for r in failures:
            out += ["", f"### {STATUS_WORD[r.status]} `{r.label}`", "", r.message, "", "```", r.details.rstrip() or r.message, "```"]
            if r.replay:
                out += ["", f"Replay: `{r.replay}`"]
    if report.captured_output.get("chars"):
        out += ["", "## Output printed by the implementation", "",
                f"{human_size(report.captured_output['chars'])} in all (captured, not shown on the terminal). Beginning:", "",
                "```", *[line if len(line) <= 200 else line[:197] + "..." for line in report.captured_output.get("head", "").splitlines()[:40]], "```"]
    return "\n".join(out) + "\n"


def write_report(report: VerifyReport, path: str | Path) -> None:
    """Write ``report`` as JSON or markdown, by the file's suffix."""
    path = Path(path)
    if path.suffix == ".json":
        path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        path.write_text(markdown(report))


def read_report(path: str | Path) -> VerifyReport:
    return VerifyReport.from_dict(json.loads(Path(path).read_text()))


REPORT_SUFFIXES = (".json", ".md")


# --- the conformance table ----------------------------------------------------------------


def matrix_columns(reports: list[VerifyReport]) -> list[tuple[str, str]]:
    """(family, title) per column: the registry's families, the extra ones, then any
    other family some report has, each once, in that order."""
    from dnspec.suite import FAMILIES

    columns = [(family, family) for family in FAMILIES] + list(EXTRA_FAMILIES)
    seen = {family for family, _ in columns}
    for report in reports:
        for record in report.outcomes:
            if record.family not in seen:
                seen.add(record.family)
                columns.append((record.family, record.family))
    return columns


def family_cell(records: list[OutcomeRecord]) -> str:
    """One cell: a family's properties aggregated. fail if any fails (with the first
    failure's one-line reason), else advisory if any advisory holds, else pass (noting
    skipped variants), else skipped (with the reason); '-' if none ran."""
    if not records:
        return "-"
    by_status = {s: [r for r in records if r.status == s] for s in STATUS_WORD}
    if by_status["fail"]:
        first = by_status["fail"][0]
        more = f" (+{len(by_status['fail']) - 1} more)" if len(by_status["fail"]) > 1 else ""
        return f"**fail**: `{first.label}`: {one_line(first.message)}{more}"
    if by_status["advisory"]:
        return "advisory: " + ", ".join(f"`{r.label}`" for r in by_status["advisory"])
    if by_status["pass"]:
        skipped = by_status["skip"]
        notes = [r.message for r in by_status["pass"] if r.message]
        return ("pass" + (f": {one_line(notes[0])}" if notes else "")
                + (f" ({', '.join(r.label for r in skipped)} skipped)" if skipped else ""))
    return f"skipped: {one_line(by_status['skip'][0].message)}"


def conformance_table(reports: list[VerifyReport]) -> str:
    """The markdown conformance table: one row per implementation, one column per family."""
    columns = matrix_columns(reports)
    header = "| implementation | " + " | ".join(title for _, title in columns) + " |"
    rule = "| --- |" + " --- |" * len(columns)
    rows = [header, rule]
    for report in reports:
        if report.error:
            cells = [f"**error**: {one_line(report.error)}"] + ["-"] * (len(columns) - 1)
        else:
            cells = [family_cell([r for r in report.outcomes if r.family == family]) for family, _ in columns]
        rows.append(f"| {_cell(report.label)} | " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def matrix_markdown(reports: list[VerifyReport], command: str = "", environment: dict | None = None) -> str:
    """The conformance table with the command that made it and the details of each failure."""
    out = ["# dnspec conformance matrix", ""]
    if command:
        out += [f"Regenerate with `{command}`.", ""]
    if environment:
        out += ["Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()) + ".", ""]
    out += [conformance_table(reports), ""]
    out += ["Cells: **fail** (a property does not hold; the first failure's reason), advisory (upstream advisories "
            "this implementation shares; reported, not failing unless `--strict`), pass, skipped (with the reason). "
            "Every failure, advisory and skip is listed below the table.", ""]
    detail = []
    for report in reports:
        interesting = [r for r in report.outcomes if r.status in ("fail", "advisory", "skip")]
        if report.error or interesting or report.notes:
            detail += ["", f"### {report.label}", ""]
            if report.error:
                detail.append(f"- error: {report.error}")
            for r in interesting:
                detail.append(f"- {STATUS_WORD[r.status]} `{r.label}`: {_cell(one_line(r.message, 2000))}")
            detail += [f"- note: {_cell(note)}" for note in report.notes]
    if detail:
        out += ["## Failures, advisories, skips and notes"] + detail
    return "\n".join(out).rstrip() + "\n"
