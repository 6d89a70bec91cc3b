"""``dnspec verify --report FILE.xml``: the report as JUnit XML, which GitHub (test
reporter actions), GitLab (``artifacts:reports:junit``) and Jenkins (the JUnit plugin)
read.

One ``<testsuites>`` holding one ``<testsuite>`` (the implementation), with the run's
settings as ``<properties>`` and one ``<testcase>`` per cell of the property x regime
grid (:mod:`dnspec.reports.grid`): ``classname`` the property's family, ``name``
``property[regime]`` (``boxes[common]``; ``label_flip_rate[fixed workload]`` for a
statistical property or an advisory, which run once on their fixed workload). In a case:

``<failure message=... type=...>``  the divergence(s) seen there: the message, the
                                     minimal example and the replay command;
``<skipped message=...>``           the reason the property did not apply, or, for a
                                     known divergence (accepted: :mod:`dnspec.running.accept`),
                                     ``KNOWN <id>: <reason>``;
``<system-out>``                    for an advisory (a passed case: RT-DETR itself
                                     violates it), what it found.

A SPEC that cannot be loaded is one case with an ``<error>``. Times: a property's time
shared evenly between its regimes (the run times properties, not cells); the suite's
time is the whole run's. Written with the standard library's ``xml.etree``. The document
is valid against the JUnit schema of Jenkins' xunit plugin (``junit-10.xsd``), which allows
``skipped`` on ``<testsuite>`` only, not on ``<testsuites>``.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from dnspec.reports.grid import cells_of
from dnspec.reports.records import STATUS_WORD, VerifyReport, first_line


def _clean(text: str) -> str:
    """Text XML 1.0 can hold: control characters other than tab, newline and carriage
    return removed (an implementation's captured output may hold anything)."""
    return "".join(ch for ch in str(text) if ch in "\t\n\r" or ord(ch) >= 0x20 and ch not in "\ufffe\uffff")


def junit_tree(report: VerifyReport) -> ET.ElementTree:
    suites = ET.Element("testsuites", name="dnspec verify")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_clean(f"dnspec verify {report.label}"),
        timestamp=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        hostname=_clean(socket.gethostname()),
    )
    properties = ET.SubElement(suite, "properties")
    settings = {
        "spec": report.spec,
        "command": report.command,
        "compatibility": report.compatibility,
        "exit_code": report.exit_code,
        "hypothesis_seed": report.hypothesis_seed,
        "regimes": ", ".join(report.regimes),
    }
    settings.update({f"implementation.{k}": v for k, v in report.implementation.items()})
    settings.update({f"option.{k}": v for k, v in report.options.items()})
    settings.update({f"environment.{k}": v for k, v in report.environment.items()})
    for name, value in settings.items():
        if value not in (None, "", [], {}):
            ET.SubElement(
                properties,
                "property",
                name=name,
                value=_clean(
                    value if isinstance(value, str) else repr(value) if isinstance(value, (list, dict)) else str(value)
                ),
            )
    tests = failures = skipped = errors = 0
    if report.error:
        case = ET.SubElement(suite, "testcase", classname="dnspec", name="load SPEC", time="0")
        ET.SubElement(case, "error", message=_clean(report.error), type="SpecError").text = _clean(report.error)
        tests, errors = 1, 1
    for outcome in report.outcomes:
        cells = cells_of(report, outcome)
        seconds = outcome.seconds / max(1, len(cells))
        for cell in cells:
            tests += 1
            case = ET.SubElement(
                suite, "testcase", classname=_clean(outcome.family), name=_clean(cell.name), time=f"{seconds:.3f}"
            )
            if cell.status == "fail":
                failures += 1
                names = [report.divergence(n).display_name for n in cell.divergences if report.divergence(n)]
                message = first_line(cell.message) or outcome.message
                ET.SubElement(
                    case, "failure", message=_clean(message), type=_clean(", ".join(names) or "failure")
                ).text = _clean(cell.message)
            elif cell.status == "known":
                skipped += 1
                known = [report.divergence(n) for n in cell.divergences if report.divergence(n)]
                message = "; ".join(f"KNOWN {d.id}: {d.accepted}" for d in known) or "KNOWN"
                ET.SubElement(case, "skipped", message=_clean(message)).text = _clean(cell.message)
            elif cell.status == "skip":
                skipped += 1
                ET.SubElement(case, "skipped", message=_clean(cell.message))
            elif cell.status == "advisory":
                ET.SubElement(case, "system-out").text = _clean(
                    f"{STATUS_WORD['advisory']}: RT-DETR itself violates this advisory, so it is reported, not failed "
                    f"(--strict fails it).\n{cell.message}"
                )
    for element in (suites, suite):
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("time", f"{report.seconds:.3f}")
    suite.set("skipped", str(skipped))  # junit-10.xsd allows it on <testsuite> only
    out = [f"compatibility: {report.compatibility}"] if report.compatibility else []
    out += [f"NOTE: {note}" for note in report.notes]
    out += [f"FIXED: {e['id']} no longer happens; remove it from accept" for e in report.fixed]
    if report.captured_output.get("chars"):
        out += [
            f"the implementation printed {report.captured_output['chars']} characters; the beginning:",
            report.captured_output.get("head", ""),
        ]
    if out:
        ET.SubElement(suite, "system-out").text = _clean("\n".join(out))
    ET.indent(suites)
    return ET.ElementTree(suites)


def junit_xml(report: VerifyReport) -> str:
    """The report as a JUnit XML document (with its XML declaration)."""
    return ET.tostring(junit_tree(report).getroot(), encoding="unicode", xml_declaration=True) + "\n"
