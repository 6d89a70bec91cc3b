"""CI annotations: on GitHub Actions (``GITHUB_ACTIONS=true``), ``dnspec verify`` prints
one ``::error`` workflow command per divergence and one ``::warning`` per advisory, per
known (accepted) divergence and per accepted id that no longer happens, which
GitHub shows as annotations on the run and the pull request.

The format is GitHub's documented one, ``::error file={name},line={line},title={title}::{message}``,
with the toolkit's escaping: in the message ``%``, ``\\r`` and ``\\n`` become ``%25``,
``%0D`` and ``%0A`` (an escaped newline shows as a line break); in a property value
``:`` and ``,`` also become ``%3A`` and ``%2C``. A divergence that raised in a file
inside the workspace (``GITHUB_WORKSPACE``, else the current folder) names that file
and line, so the annotation sits on the raising line. GitHub shows at most 10 error
and 10 warning annotations per step; the rest are still in the log.
"""

from __future__ import annotations

import os
import re

from dnspec.reports.records import VerifyReport, one_line

EXAMPLE_CHARS = 1500  # the longest minimal example put into an annotation


def escape_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties) -> str:
    """``::name key=value,...::message``, escaped."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items() if value not in (None, ""))
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


_RAISED = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _location(where_details: str, workspace: str) -> dict:
    """file= and line= for a raising line inside the workspace, else nothing."""
    found = _RAISED.search(where_details or "")
    if not found:
        return {}
    path = os.path.abspath(found.group("file"))
    relative = os.path.relpath(path, os.path.abspath(workspace))
    if relative.startswith(os.pardir + os.sep) or relative == os.pardir or os.path.isabs(relative):
        return {}
    return {"file": relative.replace(os.sep, "/"), "line": found.group("line")}


def annotations(report: VerifyReport, workspace: str | None = None) -> list[str]:
    """The workflow commands for one report: ::error per divergence (or for a run that
    could not start), ::warning per advisory."""
    workspace = workspace or os.environ.get("GITHUB_WORKSPACE") or os.getcwd()
    label = report.label
    if report.error:
        return [command("error", report.error, title=f"dnspec verify {label}: cannot run")]
    lines = []
    for d in report.divergences:
        body = [one_line(d.title, 600), f"regimes: {d.regimes_text}", f"properties: {', '.join(d.properties)}"]
        if d.example:
            example = (
                d.example
                if len(d.example) <= EXAMPLE_CHARS
                else d.example[:EXAMPLE_CHARS] + " ... (in full in the --report file)"
            )
            body.append(f"minimal example ({d.example_property} in {d.example_regime}): {example}")
        if d.replay:
            body.append(f"replay: {d.replay}")
        if d.known:
            body.insert(0, f"KNOWN ({d.accepted_by}): {d.accepted}")
        lines.append(
            command(
                "warning" if d.known else "error",
                "\n".join(body),
                title=f"dnspec {label}: {'known divergence' if d.known else 'divergence'} {d.number}: {d.id}",
                **_location(d.where_details, workspace),
            )
        )
    for entry in report.fixed:
        lines.append(
            command(
                "warning",
                f"{entry['id']} no longer happens; remove it from accept ({entry.get('source', '')})",
                title=f"dnspec {label}: FIXED {entry['id']}",
            )
        )
    for record in report.outcomes:
        if record.status == "advisory":
            lines.append(
                command(
                    "warning",
                    one_line(record.details or record.message, 1000),
                    title=f"dnspec {label}: advisory {record.label}",
                )
            )
    return lines


def on_github_actions(environ=None) -> bool:
    return (environ if environ is not None else os.environ).get("GITHUB_ACTIONS", "").lower() == "true"


def print_annotations(report: VerifyReport, stream, environ=None) -> int:
    """Print the annotations when running on GitHub Actions; returns how many."""
    if not on_github_actions(environ):
        return 0
    lines = annotations(report)
    for line in lines:
        stream.write(line + "\n")
    stream.flush()
    return len(lines)
