"""The error-input family: what an implementation does with bad input.

For each kind of :data:`dnspec.generation.error_inputs.ERROR_KINDS`, a few broken calls are made
and each is classified by :func:`classify_bad_input_behaviour`:

``raises``              it raised (type and message kept; ``names_field`` says whether the
                        message names the broken field, i.e. whether it helps the user)
``visibly_bad``         it returned outputs that show something is wrong: NaN or inf,
                        boxes outside the logit range ``inverse_sigmoid`` can produce
                        (|x| > ~11.52), tensors of inconsistent shapes or dtypes, a mask
                        smaller than the denoising rows, negative split sizes or
                        positive indices outside [0, N)
``silently_plausible``  it returned finite outputs of consistent shapes, or
                        (None, None, None, None) — training would go on with garbage, or
                        without denoising, and nothing says why

``hangs`` is recorded by :func:`run_bad_input_family` when a call runs past its time
limit; ``crashes`` (the process dies) can only be seen from outside the process, by the
caller that runs the suite. The family is advisory: it never fails a contract run, and
``strict`` turns ``silently_plausible`` (only) into a failure.
"""

from __future__ import annotations

import collections
import math
import warnings
import zlib
from dataclasses import dataclass, field

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from dnspec.calling.call import ImplementationTimeout, refuse_if_hung, time_limit
from dnspec.contract.boxes import INVERSE_SIGMOID_EPS
from dnspec.generation.error_inputs import ERROR_KINDS, ErrorCase, available_kinds, error_cases

RAISES, VISIBLY_BAD, SILENTLY_PLAUSIBLE, HANGS, CRASHES = (
    "raises",
    "visibly_bad",
    "silently_plausible",
    "hangs",
    "crashes",
)
# how quietly a call went wrong, the quietest last: a kind's verdict is its quietest outcome
QUIETNESS = (RAISES, VISIBLY_BAD, HANGS, CRASHES, SILENTLY_PLAUSIBLE)

# the largest |value| inverse_sigmoid returns, log((1 - eps) / eps) < log(1 / eps), plus
# room for float16/bfloat16 rounding of it
BOX_LOGIT_LIMIT = math.log(1 / INVERSE_SIGMOID_EPS) + 0.02


@dataclass(frozen=True)
class BadInputOutcome:
    """How one implementation treated one ErrorCase."""

    verdict: str  # RAISES | VISIBLY_BAD | SILENTLY_PLAUSIBLE (HANGS | CRASHES set by callers)
    detail: str
    exception_type: str | None = None
    message: str | None = None
    names_field: bool = False
    warnings: tuple[str, ...] = ()  # warnings the call emitted (a warning alone does not make it loud)

    def __str__(self) -> str:
        return f"{self.verdict}: {self.detail}"


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def classify_bad_input_behaviour(
    impl, error_case: ErrorCase, *, time_limit_s: float | None = None, **call_kwargs
) -> BadInputOutcome:
    """Call ``impl`` on the broken call (seeded, under no_grad) and classify what it did.

    A call that runs past ``time_limit_s`` raises ImplementationTimeout for the caller to
    record as ``hangs``, as does an implementation that hung earlier in this run (it is
    not called again); any other exception is the outcome ``raises``."""
    name = getattr(impl, "name", getattr(impl, "__name__", repr(impl)))
    refuse_if_hung(name, error_case.case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with time_limit(time_limit_s, f"{name}"):
                outputs = error_case.case.call(impl, **call_kwargs)
        except ImplementationTimeout:
            raise
        except Exception as exc:  # an implementation may raise anything
            message = _first_line(str(exc)) if str(exc) else ""
            return BadInputOutcome(
                RAISES,
                f"{type(exc).__name__}: {message}" if message else type(exc).__name__,
                exception_type=type(exc).__name__,
                message=message,
                names_field=error_case.field in message,
                warnings=_warning_lines(caught),
            )
    warned = _warning_lines(caught)
    problems = visible_problems(outputs, error_case)
    if problems:
        return BadInputOutcome(VISIBLY_BAD, "; ".join(problems), warnings=warned)
    if isinstance(outputs, (tuple, list)) and all(x is None for x in outputs):
        detail = "returned (None, None, None, None): denoising skipped"
    else:
        detail = "returned finite outputs of consistent shapes"
    if warned:
        detail += f", with {len(warned)} warning(s): {warned[0]}"
    else:
        detail += ": nothing shows the input was bad"
    return BadInputOutcome(SILENTLY_PLAUSIBLE, detail, warnings=warned)


def _warning_lines(caught) -> tuple[str, ...]:
    return tuple(f"{w.category.__name__}: {_first_line(str(w.message), 120)}" for w in caught)


def visible_problems(outputs, error_case: ErrorCase | None = None) -> list[str]:
    """What in ``outputs`` shows that something went wrong (empty: nothing does)."""
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        return [
            f"returned {type(outputs).__name__}{'' if not isinstance(outputs, (tuple, list)) else f' of {len(outputs)}'}, not 4 outputs"
        ]
    if all(x is None for x in outputs):
        return []
    query_class, query_bbox, attn_mask, meta = outputs
    problems = []
    tensors_ok = True
    for label, tensor in (("input_query_class", query_class), ("input_query_bbox", query_bbox)):
        if not isinstance(tensor, torch.Tensor):
            problems.append(f"{label} is {type(tensor).__name__}, not a tensor")
            tensors_ok = False
        elif not tensor.dtype.is_floating_point:
            problems.append(f"{label} has dtype {tensor.dtype}")
        else:
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                problems.append(f"{label} has {bad} non-finite values of {tensor.numel()}")
    if not tensors_ok:
        return problems
    if (
        query_class.dim() != 3
        or query_bbox.dim() != 3
        or query_bbox.shape[-1] != 4
        or query_class.shape[:2] != query_bbox.shape[:2]
    ):
        problems.append(
            f"inconsistent shapes: input_query_class {list(query_class.shape)}, input_query_bbox {list(query_bbox.shape)}"
        )
        return problems
    batch, num_dn = query_bbox.shape[:2]
    targets = getattr(getattr(error_case, "case", None), "targets", None)
    if isinstance(targets, (list, tuple)) and batch != len(targets):
        problems.append(f"batch size {batch}, but {len(targets)} images")
    if query_bbox.dtype.is_floating_point and query_bbox.numel():
        finite = query_bbox[torch.isfinite(query_bbox)]
        if finite.numel() and float(finite.abs().max()) > BOX_LOGIT_LIMIT:
            problems.append(
                f"input_query_bbox reaches {float(finite.abs().max()):.4g}, outside the logit range +-{BOX_LOGIT_LIMIT:.4g}"
            )
    if not isinstance(attn_mask, torch.Tensor) or attn_mask.dim() != 2 or attn_mask.shape[0] != attn_mask.shape[1]:
        problems.append(f"attn_mask is not a square matrix ({_describe(attn_mask)})")
    else:
        side = attn_mask.shape[0]
        if attn_mask.dtype != torch.bool:
            problems.append(f"attn_mask has dtype {attn_mask.dtype}")
        if side < num_dn:
            problems.append(f"attn_mask is {side}x{side}, smaller than the {num_dn} denoising rows")
        problems.extend(_meta_problems(meta, num_dn, side))
    return problems


def _describe(x) -> str:
    return f"shape {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _meta_problems(meta, num_dn: int, side: int) -> list[str]:
    if not isinstance(meta, dict):
        return [f"dn_meta is {type(meta).__name__}, not a dict"]
    problems = []
    split = meta.get("dn_num_split")
    try:
        split = [int(x) for x in split]
    except (TypeError, ValueError):
        return [f"dn_num_split is {split!r}"]
    if any(x < 0 for x in split):
        problems.append(f"dn_num_split {split} has a negative size")
    elif sum(split) != side:
        problems.append(f"dn_num_split {split} does not add up to the mask side {side}")
    indices = meta.get("dn_positive_idx")
    if isinstance(indices, (list, tuple)):
        for i, idx in enumerate(indices):
            if isinstance(idx, torch.Tensor) and idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_dn):
                problems.append(f"dn_positive_idx[{i}] has values outside [0, {num_dn})")
                break
    return problems


# --- the family over all kinds --------------------------------------------------------------


@dataclass
class KindResult:
    """Outcomes of one kind: how many calls ended each way, and the first example of each."""

    kind: str
    counts: collections.Counter = field(default_factory=collections.Counter)
    examples: dict = field(default_factory=dict)  # verdict -> (ErrorCase, BadInputOutcome)
    skipped: str | None = None

    def add(self, error_case: ErrorCase, outcome: BadInputOutcome) -> None:
        self.counts[outcome.verdict] += 1
        self.examples.setdefault(outcome.verdict, (error_case, outcome))

    @property
    def verdict(self) -> str | None:
        """The quietest outcome seen (None when skipped or never run)."""
        seen = [v for v in QUIETNESS if self.counts[v]]
        return seen[-1] if seen else None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        if self.skipped:
            return f"{self.kind}: skipped ({self.skipped})"
        verdict = self.verdict
        tally = ", ".join(f"{v} {self.counts[v]}/{self.total}" for v in QUIETNESS if self.counts[v])
        error_case, outcome = self.examples[verdict]
        return f"{self.kind}: {tally}; e.g. {error_case.detail} -> {outcome}"


@dataclass
class BadInputReport:
    """The error-input family's result for one implementation."""

    impl_name: str
    results: dict  # kind -> KindResult

    def kinds_with(self, verdict: str) -> list[str]:
        return [k for k, r in self.results.items() if r.verdict == verdict]

    def failed(self, strict: bool) -> bool:
        """Only under ``strict``, and only for silently plausible outputs."""
        return strict and bool(self.kinds_with(SILENTLY_PLAUSIBLE))

    def summary(self) -> str:
        """One cell for the conformance table, e.g. 'raises 15, visibly bad 3, silent 5 of 23 kinds'."""
        run = [r for r in self.results.values() if r.verdict]
        counts = collections.Counter(r.verdict for r in run)
        parts = [
            f"{v.replace('_', ' ').replace('silently plausible', 'silent')} {counts[v]}" for v in QUIETNESS if counts[v]
        ]
        return f"{', '.join(parts)} of {len(run)} kinds" if run else "not run"

    def lines(self) -> list[str]:
        return [r.line() for r in self.results.values()]


def _classifier(impl, result: KindResult, time_limit_s, call_kwargs):
    def classify(error_case):
        if result.counts[HANGS]:
            return  # once it hung, do not wait the limit out again
        try:
            outcome = classify_bad_input_behaviour(impl, error_case, time_limit_s=time_limit_s, **call_kwargs)
        except ImplementationTimeout as timeout:
            outcome = BadInputOutcome(HANGS, str(timeout))
        result.add(error_case, outcome)

    return classify


def run_bad_input_family(
    impl,
    valid_cases=None,
    *,
    kinds=None,
    examples_per_kind: int = 4,
    seed: int = 0,
    time_limit_s: float | None = None,
    **call_kwargs,
) -> BadInputReport:
    """Classify ``impl`` on ``examples_per_kind`` broken calls of every kind (default:
    every kind available here; device_mismatch needs CUDA). Reproducible for a given
    ``seed``. A hang stops the family: later kinds are reported as skipped."""
    if valid_cases is None:
        from dnspec.generation.strategies import cdn_cases

        valid_cases = cdn_cases(max_batch_size=4, max_boxes=4)
    name = getattr(impl, "name", getattr(impl, "__name__", repr(impl)))
    names = list(ERROR_KINDS if kinds is None else kinds)
    here = set(available_kinds())
    results: dict[str, KindResult] = {}
    hung: str | None = None
    for kind in names:
        result = results[kind] = KindResult(kind)
        if kind not in here:
            result.skipped = ERROR_KINDS[kind].unavailable()
            continue
        if hung:
            result.skipped = f"not run: {name} hung on {hung}"
            continue

        test = given(error_cases(valid_cases, [kind]))(_classifier(impl, result, time_limit_s, call_kwargs))
        test = settings(
            max_examples=examples_per_kind,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(test)
        hypothesis_seed(seed * 2**32 + zlib.crc32(kind.encode()))(test)()  # a kind's cases do not depend on the others
        if result.counts[HANGS]:
            hung = kind
    return BadInputReport(name, results)


def check_bad_input(impl, seed: int = 0, device: str = "cpu") -> str:
    """The error-input family as a property: holds (returning the summary line) when no
    kind of bad input gives silently plausible outputs; otherwise raises an
    AssertionError listing those kinds. The suite reports it as an advisory: it fails
    only under strict (or for implementations that declare fixes_advisories)."""
    from dnspec.calling import call as calling

    report = run_bad_input_family(impl, seed=seed, time_limit_s=calling.DEFAULT_TIME_LIMIT_S_ACTIVE)
    silent = report.kinds_with(SILENTLY_PLAUSIBLE)
    if silent:
        lines = [report.results[kind].line() for kind in silent]
        raise AssertionError(
            f"silently plausible outputs for {len(silent)} kinds of bad input ({report.summary()}): " + "; ".join(lines)
        )
    return report.summary()
