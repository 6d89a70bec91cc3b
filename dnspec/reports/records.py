"""What ``dnspec verify`` found, as plain data: the content of ``--report FILE.json``, and
what ``dnspec matrix`` reads back from each subprocess.

A :class:`VerifyReport` holds one :class:`OutcomeRecord` per property (how it fared in
each regime, and which divergences it shows) and one :class:`DivergenceRecord` per
divergence (what goes wrong, where, in which regimes, for which properties, its minimal
example and replay command). Everything that renders a report (:mod:`dnspec.reports.text`,
:mod:`dnspec.reports.conformance`) works on these records, never on live implementations, so a
report written by another process (or another dnspec version) renders the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATUS_WORD = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "advisory": "ADVISORY", "known": "KNOWN"}
STATUS_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "advisory": "magenta", "known": "yellow"}

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
    regimes: dict = field(default_factory=dict)  # regime name -> "pass" | "fail" (or "fixed workload" -> status)
    divergences: list = field(default_factory=list)  # numbers of the divergences this property shows

    @classmethod
    def from_outcome(cls, outcome, printed_chars: int = 0, replay: str = "") -> OutcomeRecord:
        return cls(
            property=outcome.prop.name,
            label=outcome.label,
            family=outcome.prop.family,
            kind=outcome.prop.kind,
            summary=outcome.prop.summary,
            status=outcome.status,
            message=outcome.message,
            details=outcome.details,
            seconds=round(outcome.seconds, 3),
            printed_chars=printed_chars,
            replay=replay,
            regimes=dict(outcome.regimes),
            divergences=list(outcome.divergences),
        )


@dataclass
class DivergenceRecord:
    """One divergence (one bug), as data."""

    number: int
    name: str  # the signature: a check id ("boxes.crossed") or "UnboundLocalError@denoising.py:97"
    kind: str  # "raises" | "hangs" | "violates"
    title: str  # what goes wrong, one line
    where: str = ""  # raises: "denoising.py:97 in get_contrastive_denoising_training_group"
    where_details: str = ""  # raises: the raising line of the implementation
    regimes: list = field(default_factory=list)  # minimal regime sets, each a list of regime names ([] = common)
    regimes_text: str = ""  # the same in words
    in_common_regime: bool = False
    properties: list = field(default_factory=list)  # labels of the properties that show it
    example: str = ""  # the minimal failing call, as Python
    example_shrunk: bool = False
    example_property: str = ""
    example_regime: str = ""
    replay: str = ""
    cells: list = field(default_factory=list)  # [{"property", "regime", "message", "example"}] first failure per cell
    id: str = ""  # the stable id, "boxes.crossed@common" (dnspec.running.divergences.divergence_id)
    accepted: str = ""  # the reason, when the id is accepted (a KNOWN divergence; dnspec.running.accept)
    accepted_by: str = ""  # where it was accepted: "pyproject.toml", "--accept", "--baseline old.json"

    def __post_init__(self):
        if not self.id:  # a report written before ids: the same id from the same data
            from dnspec.running.divergences import divergence_id

            self.id = divergence_id(self.kind, self.name, self.regimes)

    @property
    def known(self) -> bool:
        return bool(self.accepted)

    @classmethod
    def from_divergence(cls, divergence, replay: str = "") -> DivergenceRecord:
        representative = divergence.representative
        cells = {}
        for finding in divergence.findings:
            cells.setdefault(
                (finding.label, finding.regime),
                {
                    "property": finding.label,
                    "regime": finding.regime,
                    "message": finding.message,
                    "example": repr(finding.case) if finding.case is not None else "",
                },
            )
        return cls(
            number=divergence.number,
            name=divergence.name,
            kind=divergence.signature.kind,
            title=divergence.title,
            where=representative.where,
            where_details=representative.details,
            regimes=[sorted(s) for s in divergence.regime_sets],
            regimes_text=divergence.regimes_text,
            in_common_regime=divergence.in_common_regime,
            properties=divergence.labels,
            example=divergence.example,
            example_shrunk=divergence.example_shrunk,
            example_property=divergence.example_label,
            example_regime=divergence.example_regime,
            replay=replay,
            cells=list(cells.values()),
            id=divergence.id,
        )

    @property
    def display_name(self) -> str:
        return self.name.replace("@", " at ") if self.kind == "raises" else self.name


@dataclass
class VerifyReport:
    """Everything one ``dnspec verify`` run found (the content of ``--report FILE.json``)."""

    spec: str
    command: str = ""
    implementation: dict = field(default_factory=dict)  # name, label, version, description, ...
    options: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)  # dnspec, torch, python versions
    compatibility: str = ""  # how close to RT-DETR (one line, never a failure by itself)
    compatibility_level: str = ""  # its key in dnspec.running.verdict.COMPATIBILITY
    conventions: dict = field(default_factory=dict)  # {"empty_batch": "dummy_group"} (dnspec.contract.conventions)
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    divergences: list[DivergenceRecord] = field(default_factory=list)
    regimes: list = field(default_factory=list)  # the regimes swept
    notes: list[str] = field(default_factory=list)  # one line each: signature, hang, printed output
    captured_output: dict = field(default_factory=dict)  # chars, head, tail
    error: str = ""  # the one-line reason when nothing could be run (SPEC not loadable, ...)
    exit_code: int = 0
    seconds: float = 0.0
    calls: int = 0  # calls of the implementation on generated cases
    hypothesis_seed: int | None = None
    fixed: list = field(default_factory=list)  # accepted ids that no longer happen: [{"id", "reason", "source"}]
    lineages: list = field(default_factory=list)  # lineages it is bit-compatible with (dnspec.contract.lineages)

    @property
    def label(self) -> str:
        return self.implementation.get("label") or self.spec

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUS_WORD if status != "known"}
        for record in self.outcomes:
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts  # "known" only when some property failed by known divergences alone

    def divergence(self, number: int) -> DivergenceRecord | None:
        return next((d for d in self.divergences if d.number == number), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["summary"] = self.counts()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VerifyReport:
        data = dict(data)
        data.pop("summary", None)
        known = set(cls.__dataclass_fields__)
        outcomes = [_record(OutcomeRecord, o) for o in data.pop("outcomes", [])]
        divergences = [_record(DivergenceRecord, d) for d in data.pop("divergences", [])]
        return cls(outcomes=outcomes, divergences=divergences, **{k: v for k, v in data.items() if k in known})


def _record(kind, data: dict):
    return kind(**{k: v for k, v in data.items() if k in kind.__dataclass_fields__})


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
    return line[: limit - tail - 5] + " ... " + line[len(line) - tail :] if tail else line[: limit - 3] + "..."


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# --- files (writing them, one format per suffix, is dnspec.reports.writers) ---------------


def read_report(path: str | Path) -> VerifyReport:
    return VerifyReport.from_dict(json.loads(Path(path).read_text()))
