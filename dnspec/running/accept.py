"""Accepted divergences: known departures a project has decided to live with, each with a
reason, so that CI fails only on a new one.

An accepted entry (:class:`Accepted`) names a divergence id (:func:`dnspec.running.divergences.divergence_id`)
or only its kind. It comes from ``accept = [{ id = "...", reason = "..." }]`` in ``[tool.dnspec]``
(:mod:`dnspec.config`), from ``--accept ID`` on the command line, or from ``--baseline REPORT.json``
(an earlier report's divergences).

Matching (:func:`match`): the kinds are equal (``boxes.crossed``, ``raises:UnboundLocalError``)
and the accepted regimes, when the entry names any, are among the divergence's: an id without
``@`` accepts that kind in any regime; ``raises:UnboundLocalError@box_noise_scale_0`` accepts it
at ``box_noise_scale == 0`` and in any narrower corner of it
(``@batch_of_one+box_noise_scale_0``), never in a regime it does not name. ``@common`` names no
regime, so it accepts the kind wherever it happens (a divergence seen in the common regime is one
divergence, whatever other regimes it also shows in).

An accepted entry that matches no divergence of a run is *fixed* (:func:`fixed`): the run says
``FIXED: <id> no longer happens; remove it from accept``, as pytest's strict xfail does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from dnspec.generation import regimes as regime_registry

EXAMPLE_REASON = "TODO: why this departure is accepted"


@dataclass(frozen=True)
class Accepted:
    """One accepted divergence: its ``id`` (or kind), why, and where it was written
    (``pyproject.toml``, ``--accept``, ``--baseline old.json``); ``spec`` limits it to one
    SPEC (empty: every SPEC)."""

    id: str
    reason: str
    source: str = ""
    spec: str = ""


def split_id(divergence_id: str) -> tuple[str, frozenset[str] | None]:
    """``'raises:X@a+b'`` -> ``('raises:X', {'a', 'b'})``; no ``@`` -> regimes None (any);
    ``@common`` -> the empty set."""
    kind, at, regimes = divergence_id.partition("@")
    if not at:
        return kind, None
    names = frozenset(r for r in regimes.split("+") if r and r != regime_registry.COMMON)
    return kind, names


def id_problem(divergence_id: str) -> str:
    """Why ``divergence_id`` cannot name a divergence dnspec reports ('' if it can): an
    unknown check, exception kind or regime."""
    from dnspec.checks.suite import BY_NAME

    kind, at, regimes = divergence_id.partition("@")
    if not kind:
        return f"{divergence_id!r}: no kind before '@'"
    if kind.startswith(("raises:", "died:")):
        if not kind.split(":", 1)[1]:
            return f"{divergence_id!r}: {kind!r} names no exception type or way of dying"
    elif kind != "hangs" and kind.split(".", 1)[0] not in BY_NAME:
        return (
            f"{divergence_id!r}: {kind!r} is no check dnspec knows (a check id starts with a property name: "
            f"{', '.join(BY_NAME)}; or raises:<Exception>, died:<how>, hangs)"
        )
    if at:
        known = set(regime_registry.NAMES)
        unknown = [r for r in regimes.split("+") if r not in known]
        if unknown or not regimes:
            return f"{divergence_id!r}: {unknown[0] if unknown else '(empty)'!r} is no regime; regimes: {', '.join(regime_registry.NAMES)}"
    return ""


def match(divergence_id: str, accepted) -> Accepted | None:
    """The first entry of ``accepted`` that accepts the divergence ``divergence_id`` (see
    the module docstring), or None."""
    kind, regimes = split_id(divergence_id)
    for entry in accepted:
        their_kind, their_regimes = split_id(entry.id)
        if their_kind != kind:
            continue
        if their_regimes is None or regimes is None or their_regimes <= regimes:
            return entry
    return None


def fixed(accepted, divergence_ids) -> list[Accepted]:
    """The entries of ``accepted`` that accept none of ``divergence_ids`` (each once)."""
    ids = list(divergence_ids)
    seen = set()
    out = []
    for entry in accepted:
        if entry.id in seen:
            continue
        seen.add(entry.id)
        if not any(match(i, [entry]) for i in ids):
            out.append(entry)
    return out


def for_spec(accepted, spec: str) -> list[Accepted]:
    """The entries that apply to ``spec`` (those with no ``spec`` apply to every SPEC)."""
    return [entry for entry in accepted if not entry.spec or same_spec(entry.spec, spec)]


def same_spec(a: str, b: str) -> bool:
    """Whether two SPEC strings name the same implementation (a file path compared as an
    absolute path)."""
    import os

    def norm(spec: str) -> str:
        path, colon, name = spec.rpartition(":")
        if colon and (path.endswith(".py") or os.sep in path or "/" in path):
            return os.path.abspath(path) + ":" + name
        return spec

    return norm(a) == norm(b)


def from_command_line(ids) -> list[Accepted]:
    """``--accept ID`` (repeatable): accepted without a written reason."""
    return [Accepted(i, "accepted on the command line (--accept)", "--accept") for i in ids or []]


def accept_block(divergence_ids, reasons: dict | None = None) -> str:
    """The ``accept = [...]`` TOML block for these divergence ids, ready to paste under
    ``[tool.dnspec]`` (reasons to fill in where none is known)."""
    reasons = reasons or {}
    lines = ["accept = ["]
    for divergence_id in dict.fromkeys(divergence_ids):
        reason = reasons.get(divergence_id) or EXAMPLE_REASON
        lines.append(f"    {{ id = {json.dumps(divergence_id)}, reason = {json.dumps(reason)} }},")
    lines.append("]")
    return "\n".join(lines)


# --- a report, judged with its accepted divergences ------------------------------------------


def apply(report, accepted) -> list[Accepted]:
    """Mark ``report``'s accepted divergences KNOWN (their reason and source on each
    :class:`~dnspec.reports.records.DivergenceRecord`), a property whose every divergence is
    known ``known`` instead of ``fail`` (and so each regime cell of it), and return the fixed
    entries (also kept in ``report.fixed``). Idempotent: applying again with other entries
    starts from the divergences, not from an earlier verdict."""
    for record in report.divergences:
        entry = match(record.id, accepted)
        record.accepted = entry.reason if entry else ""
        record.accepted_by = entry.source if entry else ""
    known = {d.number for d in report.divergences if d.known}
    for outcome in report.outcomes:
        if outcome.status not in ("fail", "known"):
            continue
        all_known = bool(outcome.divergences) and all(n in known for n in outcome.divergences)
        outcome.status = "known" if all_known else "fail"
        for regime, status in list(outcome.regimes.items()):
            if status in ("fail", "known"):
                outcome.regimes[regime] = "known" if all_known else "fail"
    gone = fixed(accepted, [d.id for d in report.divergences])
    report.fixed = [{"id": e.id, "reason": e.reason, "source": e.source} for e in gone]
    if report.divergences and report.compatibility_level == "departs":
        report.compatibility = _departs_line(report.compatibility, len(known), len(report.divergences) - len(known))
    return gone


_DEPARTS = re.compile(
    r"departs from (?P<oracle>.+?) \(see divergences\)(?:: \d+ new, \d+ known)?|departs from (?P<oracle2>.+?): \d+ known divergences?"
)


def _departs_line(line: str, n_known: int, n_new: int) -> str:
    """The compatibility line of a run that departs by its divergences, counting the known
    ones: ``departs from ORACLE: 2 known divergences`` or ``departs from ORACLE (see
    divergences): 1 new, 2 known``. The oracle (RT-DETR, a lineage's builder, THEIRS) and
    anything after the counted part (a recognised lineage, where THEIRS raised) are kept; a
    line that departs for another reason (THEIRS' distributions) is returned unchanged."""
    found = _DEPARTS.match(line or "")
    if not found:
        return line
    oracle, rest = found.group("oracle") or found.group("oracle2"), line[found.end() :]
    if n_known and not n_new:
        head = f"departs from {oracle}: {n_known} known divergence{'s' if n_known != 1 else ''}"
    elif n_known:
        head = f"departs from {oracle} (see divergences): {n_new} new, {n_known} known"
    else:
        head = f"departs from {oracle} (see divergences)"
    return head + rest
