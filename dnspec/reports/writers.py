"""Which writer a report file's suffix names: the one place that knows every report
format. :mod:`dnspec.reports.records` holds the records and knows none of their writers
(each writer imports the records, never the other way round, so no import circle); each
writer's module is imported only when a file of its format is written, so a verify run
that writes JSON never imports the HTML page's plotting code.

The invariant: :data:`WRITERS` has one entry per suffix in :data:`REPORT_SUFFIXES`, and
:func:`write_report` writes ``path`` with the writer its suffix names (markdown for any
other suffix, as ``dnspec verify`` refuses other suffixes before running).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dnspec.reports.records import VerifyReport


def _json(report: VerifyReport, pictures=None) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def _markdown(report: VerifyReport, pictures=None) -> str:
    from dnspec.reports.text import markdown

    return markdown(report)


def _junit(report: VerifyReport, pictures=None) -> str:
    from dnspec.reports.junit import junit_xml

    return junit_xml(report)


def _html(report: VerifyReport, pictures=None) -> str:
    from dnspec.reports.html import html_page

    return html_page(report, pictures)


# suffix -> (the text of the file, its encoding: None is the locale's, as before)
WRITERS: dict[str, tuple[Callable[..., str], str | None]] = {
    ".json": (_json, None),
    ".md": (_markdown, None),
    ".xml": (_junit, "utf-8"),  # JUnit XML
    ".html": (_html, "utf-8"),  # a self-contained page
}
REPORT_SUFFIXES = tuple(WRITERS)


def write_report(report: VerifyReport, path: str | Path, pictures=None) -> None:
    """Write ``report`` in the format its file's suffix names (see REPORT_SUFFIXES);
    ``pictures`` (a :class:`dnspec.reports.pictures.Pictures`) go into an .html page."""
    path = Path(path)
    text, encoding = WRITERS.get(path.suffix, WRITERS[".md"])
    path.write_text(text(report, pictures), encoding=encoding)


def wants_pictures(paths) -> bool:
    """Whether any of the report files is a page with pictures (.html)."""
    return any(Path(p).suffix == ".html" for p in paths or [])
