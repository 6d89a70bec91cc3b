"""Classifying failures into divergences: one bug, one line.

A :class:`Finding` is one failure seen by one property on one call: what went wrong
(its :class:`Signature`), on which call (the case, whose regimes
:func:`dnspec.generation.regimes.regimes_of` reads off), and the message. Findings with the same
signature are the same divergence, whatever property saw them and in whichever regime:

``raises``    the implementation raised: same exception type and same raising line (the
              innermost traceback frame in the implementation's own code, not dnspec's or
              torch's) is one divergence;
``hangs``     it ran past the per-call time limit (every later call is refused);
``violates``  a check failed: the same check id (``boxes.crossed``,
              ``attention_mask.object_queries_see_dn``, ...) is one divergence.

A differential finding (``noiseless_matches_reference.attn_mask``: an output differs from
the reference's) is folded into the divergence of the direct property of that output
(``attention_mask``) when there is one in the same regimes, so that one wrong mask is one
divergence, seen by two properties.

One cause seen as several signatures is one divergence too (:func:`_merge_causes`), on
the ``structure`` divergence it goes with, whose line lists every property affected:

- a check that could not read an output (``<property>.unreadable_output``) is folded into
  the structure divergence (the output's shape or type) seen in its regimes: the wrong
  output is the bug, not each property that tripped on it;
- a crash and a structure divergence in exactly the same regimes, outside the common
  regime, are one edge the builder does not handle (no ``if num_denoising <= 0`` guard:
  ``num_denoising == 0`` returns outputs, a negative one raises).

A divergence's regimes are the smallest regime sets among its findings'
(:func:`dnspec.generation.regimes.minimal_regime_sets`): "the common regime" when any finding was in
it, else e.g. "box_noise_scale == 0".
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field

from dnspec.generation import regimes as regime_registry

RAISES, HANGS, VIOLATES = "raises", "hangs", "violates"

# the output a differential check names -> the property that checks that output directly
FIELD_PROPERTY = {
    "input_query_class": "class_queries",
    "input_query_bbox": "boxes",
    "attn_mask": "attention_mask",
    "dn_positive_idx": "positive_indices",
    "dn_meta": "structure",
    "none": "structure",
}
DIFFERENTIAL = ("noiseless_matches_reference", "injected_noise_matches_reference")

_DNSPEC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # the dnspec package


def _package_dir(name: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.abspath(next(iter(spec.submodule_search_locations))) + os.sep


_FOREIGN_DIRS = tuple(d for d in (_DNSPEC_DIR, _package_dir("torch")) if d)


@dataclass(frozen=True)
class Signature:
    """What makes two failures the same divergence."""

    kind: str  # RAISES | HANGS | VIOLATES
    key: str  # "UnboundLocalError@denoising.py:97" | "timeout" | a check id

    def __str__(self) -> str:
        return self.key


@dataclass
class Finding:
    """One failure of one property on one call."""

    label: str  # the property's label, e.g. "dtype_agreement[bfloat16]"
    signature: Signature
    message: str
    case: object = None  # the CdnCase of the failing call (None: a fixed workload)
    regime: str = regime_registry.COMMON  # the cell (generation regime) it was found in
    where: str = ""  # raises: "denoising.py:97 in get_contrastive_denoising_training_group"
    details: str = ""  # raises: the innermost traceback lines of the implementation
    call_regimes: frozenset | None = None  # where it happened when no case says (a worker that died in a regime)

    @property
    def regimes(self) -> frozenset[str]:
        if self.case is None:
            return self.call_regimes if self.call_regimes is not None else frozenset()
        return regime_registry.regimes_of(self.case)


def raising_frame(error: BaseException):
    """The innermost traceback frame of ``error`` in the implementation's own code: not in
    dnspec or torch (an adapter's own frames count as the implementation's only when no
    other frame is left). None when the traceback is empty."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    theirs = [f for f in frames if not os.path.abspath(f.filename).startswith(_FOREIGN_DIRS)]
    if theirs:
        return theirs[-1]
    ours = [f for f in frames if not os.path.abspath(f.filename).startswith(_DNSPEC_DIR)] or frames
    return ours[-1] if ours else None


def crash_signature(error: BaseException) -> tuple[Signature, str, str]:
    """(signature, where, details) of an exception the implementation raised (the
    ImplementationError's chained cause, when there is one)."""
    from dnspec.calling.call import ImplementationTimeout, UnreadableOutput

    if isinstance(error, ImplementationTimeout):
        return Signature(HANGS, "timeout"), "", ""
    if isinstance(error, UnreadableOutput):  # one divergence, whatever property needed the call
        return Signature(VIOLATES, "structure.outputs"), "", ""
    cause = error.__cause__ or error
    frame = raising_frame(cause)
    if frame is None:
        return Signature(RAISES, type(cause).__name__), "", ""
    where = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    shown = (
        os.path.relpath(frame.filename)
        if os.path.abspath(frame.filename).startswith(os.getcwd() + os.sep)
        else frame.filename
    )
    details = f'File "{shown}", line {frame.lineno}, in {frame.name}' + (f"\n    {frame.line}" if frame.line else "")
    return (
        Signature(RAISES, f"{type(cause).__name__}@{os.path.basename(frame.filename)}:{frame.lineno}"),
        where,
        details,
    )


# --- ids ----------------------------------------------------------------------------------

WORKER_DIED = "worker process died"


def id_kind(kind: str, key: str) -> str:
    """The kind part of a divergence id, from its signature: the check id for a violated
    check, ``raises:<ExceptionType>`` (never the raising line), ``died:<how>``, ``hangs``."""
    if kind == HANGS:
        return "hangs"
    if key.startswith("died:"):
        return key
    if key.startswith(WORKER_DIED):
        how = key[len(WORKER_DIED) :].strip(" :()")
        return f"died:{how or 'crash'}"
    if kind == RAISES:
        return "raises:" + key.split("@", 1)[0]
    return key


def regimes_part(regime_sets) -> str:
    """The regime part of a divergence id: every regime name in its minimal regime sets,
    sorted, joined by ``+``; ``common`` when none (it happens in the common regime)."""
    names = sorted({name for regimes in regime_sets for name in regimes})
    return "+".join(names) if names else regime_registry.COMMON


def divergence_id(kind: str, key: str, regime_sets) -> str:
    """``<kind>@<regimes>`` (see the module docstring): the same bug gives the same id
    whatever the seed, the example, or the line it raised on."""
    return f"{id_kind(kind, key)}@{regimes_part(regime_sets)}"


# --- divergences ----------------------------------------------------------------------------


@dataclass
class Divergence:
    """One bug: every finding with one signature (plus the differential findings folded
    into it), with the minimal example chosen for it."""

    number: int
    signature: Signature
    findings: list[Finding] = field(default_factory=list)
    example: str = ""  # the minimal failing call, as Python (set after shrinking)
    example_case: object = None  # the same call, as a CdnCase (None: a fixed workload)
    example_shrunk: bool = False
    example_message: str = ""  # the failure message on that example
    example_label: str = ""  # the property (label) and regime the example fails
    example_regime: str = regime_registry.COMMON

    @property
    def name(self) -> str:
        return self.signature.key if self.signature.kind != HANGS else "hangs"

    @property
    def regime_sets(self) -> list[frozenset[str]]:
        return regime_registry.minimal_regime_sets(f.regimes for f in self.findings)

    @property
    def id(self) -> str:
        """The stable id (:func:`divergence_id`): ``boxes.crossed@common``."""
        return divergence_id(self.signature.kind, self.signature.key, self.regime_sets)

    @property
    def in_common_regime(self) -> bool:
        return any(not f.regimes for f in self.findings)

    @property
    def regimes_text(self) -> str:
        return ", ".join(regime_registry.describe_set(s) for s in self.regime_sets)

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(f.label for f in self.findings))

    @property
    def representative(self) -> Finding:
        """The finding to show and to shrink: the direct property's (not a differential
        one), in the smallest regime set, on a generated case (not a fixed workload)."""
        if self.signature.kind == HANGS:
            return self.findings[0]  # the call that hung (the later ones were refused)
        minimal = set(self.regime_sets)

        def rank(item):
            index, finding = item
            return (
                finding.regimes not in minimal,
                finding.label.split("[")[0] in DIFFERENTIAL,
                finding.case is None or bool(getattr(finding.case, "note", "")),
                index,
            )

        return min(enumerate(self.findings), key=rank)[1]

    @property
    def title(self) -> str:
        """What goes wrong, in one line."""
        finding = self.representative
        message = self.example_message or finding.message
        if self.signature.kind == RAISES:
            return f"{message} (at {finding.where})" if finding.where else message
        crash = next((f for f in self.findings if f.signature.kind == RAISES), None)  # merged: one cause
        if crash is not None:
            where = f" at {crash.where}" if crash.where else ""
            return f"{message}; on other calls in these regimes it raises {crash.signature.key.split('@')[0]}{where}"
        return message


def _field_of(finding: Finding) -> str | None:
    """The output a differential finding is about: ``attn_mask`` for
    ``noiseless_matches_reference.attn_mask``, ``input_query_class.shape`` when its shape
    differs."""
    base = finding.label.split("[")[0]
    if finding.signature.kind != VIOLATES or base not in DIFFERENTIAL:
        return None
    return finding.signature.key.split(".", 1)[1] if "." in finding.signature.key else None


def classify(findings: list[Finding], order: dict | None = None) -> list[Divergence]:
    """Group findings into divergences (see the module docstring). Numbered: those seen in
    the common regime first, then by how many properties they affect, then in the order
    of their first finding; each divergence's findings in ``order`` (label -> rank: the
    registry's order of properties)."""
    by_signature: dict[Signature, Divergence] = {}
    folded: list[Finding] = []
    for finding in findings:
        if _field_of(finding):
            folded.append(finding)
            continue
        if finding.signature not in by_signature:
            by_signature[finding.signature] = Divergence(0, finding.signature)
        by_signature[finding.signature].findings.append(finding)
    for finding in folded:
        target = _direct_divergence(finding, list(by_signature.values()))
        if target is None:
            target = by_signature.setdefault(finding.signature, Divergence(0, finding.signature))
        target.findings.append(finding)
    divergences = _merge_causes(list(by_signature.values()))
    first = {id(d): i for i, d in enumerate(divergences)}
    divergences.sort(key=lambda d: (not d.in_common_regime, -len(d.labels), first[id(d)]))
    for number, divergence in enumerate(divergences, 1):
        divergence.number = number
        if order:
            divergence.findings.sort(key=lambda f: order.get(f.label, len(order)))
    return divergences


def _direct_divergence(finding: Finding, divergences: list[Divergence]) -> Divergence | None:
    """The divergence of the property that checks this differential finding's output
    directly (for a shape, the structure check of that output's shape), seen in the
    finding's regimes (one of its regime sets within the finding's)."""
    field = _field_of(finding) or ""
    prefix = f"structure.{field}" if field.endswith(".shape") else f"{FIELD_PROPERTY.get(field)}."
    for divergence in divergences:
        if divergence.signature.kind != VIOLATES or not divergence.signature.key.startswith(prefix):
            continue
        if any(s <= finding.regimes for s in divergence.regime_sets):
            return divergence
    return None


def _merge_causes(divergences: list[Divergence]) -> list[Divergence]:
    """Fold the divergences that are one cause into the structure divergence they go with
    (see the module docstring); the others are returned as they are, in order."""
    structure = [d for d in divergences if d.signature.kind == VIOLATES and d.signature.key.startswith("structure.")]
    kept = []
    for divergence in divergences:
        target = None
        if divergence.signature.kind == VIOLATES and divergence.signature.key.endswith(".unreadable_output"):
            target = next(
                (s for s in structure if all(any(r <= f.regimes for r in s.regime_sets) for f in divergence.findings)),
                None,
            )
        elif divergence.signature.kind == RAISES and not divergence.in_common_regime:
            target = next(
                (s for s in structure if not s.in_common_regime and set(s.regime_sets) == set(divergence.regime_sets)),
                None,
            )
        if target is None or target is divergence:
            kept.append(divergence)
        else:
            target.findings.extend(divergence.findings)
    return kept


# --- results that depend on the call history -----------------------------------------------

HISTORY = "call_history"  # dnspec.checks.call_history.CHECK: the property's check id
SAME_SEED = ("determinism", "device_agreement", "dtype_agreement")  # compare two of its calls under one seed


def explained_by_history(signature: Signature) -> bool:
    """A result that depends on the call history (``call_history``), or a failed same-seed
    comparison of two calls (:data:`SAME_SEED`), which such a result explains."""
    return signature.kind == VIOLATES and (signature.key == HISTORY or signature.key.split(".")[0] in SAME_SEED)


def fold_history(divergences: list[Divergence], shrunk: dict) -> list[Divergence]:
    """One divergence for a result that depends on the call history: the ``call_history``
    property's, and every divergence whose shrink found that its failure does not happen
    again on the same case (``shrunk``: number -> the shrink's Finding, whose signature
    is then ``call_history``), and, when either exists, the divergences of the properties
    that compare two of its calls under one seed (:data:`SAME_SEED`: while its result
    depends on what was called before, two of its calls cannot be compared; a bug of
    their own shows once the history is fixed) are folded into the first of them, which takes the ``call_history``
    signature and the example of the first shrink that showed it. The rest keep their
    order; all are numbered again from 1. No history: ``divergences`` as they are."""
    history = Signature(VIOLATES, HISTORY)
    flaky = {n for n, f in shrunk.items() if getattr(f, "signature", None) == history}
    folded = [d for d in divergences if d.signature == history or d.number in flaky]
    if not folded:
        return divergences
    folded += [d for d in divergences if explained_by_history(d.signature)]
    folded = [d for d in divergences if d in folded]  # their order
    target = Divergence(0, history, [f for d in folded for f in d.findings])
    shown = next((d for d in folded if d.number in flaky), None) or next(
        (d for d in folded if d.signature == history), folded[0]
    )
    for name in ("example", "example_case", "example_shrunk", "example_message", "example_label", "example_regime"):
        setattr(target, name, getattr(shown, name))
    result = []
    for divergence in divergences:
        if divergence is folded[0]:
            result.append(target)
        elif divergence not in folded:
            result.append(divergence)
    for number, divergence in enumerate(result, 1):
        divergence.number = number
    return result
