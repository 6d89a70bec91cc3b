"""Error-input strategies break exactly one thing, and the error-input family reports
what the reference without its validator (upstream's behaviour) really does with each.

The expected upstream outcome of every kind is written down in ``upstream_verdicts``,
with the conditions under which it changes (found by running the reference and reading
why: e.g. a box with an infinite centre is clipped back into [0, 1] when box noise is on,
so it comes back finite)."""

import functools
import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dnspec.checks.bad_input import (
    HANGS,
    RAISES,
    SILENTLY_PLAUSIBLE,
    VISIBLY_BAD,
    BadInputReport,
    KindResult,
    classify_bad_input_behaviour,
    run_bad_input_family,
    visible_problems,
)
from dnspec.contract.reference import get_contrastive_denoising_training_group as reference
from dnspec.contract.validation import CdnInputError, validate_cdn_inputs
from dnspec.generation.cases import CdnCase
from dnspec.generation.error_inputs import ERROR_KINDS, ErrorCase, RawCall, available_kinds, error_cases
from dnspec.generation.strategies import cdn_cases

upstream = functools.partial(reference, validate=False)
VALID = cdn_cases(max_batch_size=4, max_boxes=4)
KINDS = available_kinds()


# --- the strategies break exactly one thing ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_breaks_exactly_its_declared_field(kind):
    @settings(max_examples=12)
    @given(error_cases(VALID, [kind]))
    def check(error_case):
        base = error_case.case.base
        assert sum(base.counts) >= 1 and base.num_denoising >= 1, "the base case must be one the builder acts on"
        validate_cdn_inputs(*RawCall.from_case(base).args())  # the base is valid
        with pytest.raises(CdnInputError) as raised:
            validate_cdn_inputs(*error_case.case.args())
        assert error_case.field in ERROR_KINDS[kind].fields
        assert (raised.value.field, raised.value.image_index) == (error_case.field, error_case.image_index), str(
            raised.value
        )

    check()


def test_error_cases_take_any_case_strategy():
    """A case with nothing to denoise (no box, num_denoising 0) is made active first; the
    dtype of the given cases is kept."""
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4, dtype=torch.float64)}
    idle = CdnCase(targets=(empty, empty), num_classes=3, num_queries=2, num_denoising=0, dtype=torch.float64)

    @settings(max_examples=20)
    @given(error_cases(st.just(idle), ["nan_box", "zero_width", "label_out_of_range"]))
    def check(error_case):
        assert error_case.case.base.num_denoising >= 1 and sum(error_case.case.base.counts) == 1
        boxes = error_case.case.targets[error_case.image_index]["boxes"]
        assert boxes.dtype == torch.float64

    check()


def test_unknown_or_unavailable_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        error_cases(VALID, ["no_such_kind"])
    if not torch.cuda.is_available():
        assert "device_mismatch" not in KINDS
        with pytest.raises(ValueError, match="needs a CUDA device"):
            error_cases(VALID, ["device_mismatch"])


def test_a_call_cannot_change_its_error_case():
    @settings(max_examples=5)
    @given(error_cases(VALID, ["nan_box"]))
    def check(error_case):
        args = error_case.case.args()
        args[0][error_case.image_index]["boxes"].fill_(0.5)
        assert torch.isnan(error_case.case.targets[error_case.image_index]["boxes"]).any()

    check()


# --- what upstream does with each kind --------------------------------------------------------


def _has_padding_rows(counts) -> bool:
    return min(counts) < max(counts)


def _copies_into(shape, n: int) -> bool:
    """Whether upstream's ``buffer[i, :n] = boxes`` accepts a tensor of ``shape`` (broadcasting)."""
    try:
        torch.empty(n, 4)[:] = torch.empty(shape)
    except RuntimeError:
        return False
    return True


def upstream_verdicts(error_case: ErrorCase) -> set:
    """The outcomes the reference with validate=False can have on this case: one where it
    is determined, two where it turns on random draws."""
    raw, base, kind, i = error_case.case, error_case.case.base, error_case.kind, error_case.image_index
    counts, ratio, scale = base.counts, base.label_noise_ratio, base.box_noise_scale
    image = raw.targets[i] if i is not None and isinstance(raw.targets, (list, tuple)) else None
    if kind == "nan_box":
        return {VISIBLY_BAD}  # NaN survives clip_ and inverse_sigmoid
    if kind == "inf_box":
        column = int(torch.isinf(image["boxes"]).nonzero()[0, 1])
        if scale == 0:
            return {VISIBLY_BAD}  # copied as is
        if column < 2:
            return {SILENTLY_PLAUSIBLE}  # an infinite centre: both corners clipped to 0 or 1
        return {VISIBLY_BAD, SILENTLY_PLAUSIBLE}  # inf side: inf - inf = NaN unless every noise sign avoids it
    if kind in (
        "zero_width",
        "negative_height",
        "corner_outside",
        "label_equals_num_classes",
        "float_labels",
        "ratio_out_of_range",
        "negative_scale",
    ):
        return {SILENTLY_PLAUSIBLE}
    if kind == "int_boxes":
        # dnspec's reference takes the box buffer dtype from targets[0]['boxes'] (upstream:
        # float32 always, so upstream is silent whatever the image)
        if i == 0:
            return {RAISES} if scale > 0 else {VISIBLY_BAD}  # torch.rand in int64 / int64 boxes returned
        return {SILENTLY_PLAUSIBLE}  # truncated into the float buffer
    if kind in ("wrong_box_shape", "length_mismatch"):
        n = len(image["labels"])
        return {SILENTLY_PLAUSIBLE} if n == 0 or _copies_into(image["boxes"].shape, n) else {RAISES}
    if kind in ("label_out_of_range", "negative_label"):
        return {RAISES} if ratio == 0 else {RAISES, SILENTLY_PLAUSIBLE}  # silent if label noise replaced every copy
    if kind == "labels_not_1d":
        return {SILENTLY_PLAUSIBLE} if len(image["labels"]) == 1 else {RAISES}
    if kind == "missing_key":
        # upstream never reads an empty image's boxes; dnspec's reference reads
        # targets[0]['boxes'] for the buffer dtype, so there a missing key raises KeyError
        missing_boxes_of_empty_image = "labels" in image and len(image["labels"]) == 0 and i != 0
        return {SILENTLY_PLAUSIBLE} if missing_boxes_of_empty_image else {RAISES}
    if kind in ("image_not_a_dict", "targets_not_a_list"):
        return {RAISES}
    if kind == "num_denoising_not_int":
        # a float group count breaks tile(), unless num_denoising // max_gt is 0.0, which
        # upstream replaces by the int 1
        return {SILENTLY_PLAUSIBLE} if raw.num_denoising < max(counts) else {RAISES}
    if kind == "embed_too_small":
        rows, num_classes = raw.embed_rows, base.num_classes
        labels_max = max(int(t["labels"].max()) for t in base.targets if len(t["labels"]))
        if _has_padding_rows(counts) or labels_max >= rows:
            return {RAISES}  # IndexError on the padding class or a label
        return {SILENTLY_PLAUSIBLE} if ratio == 0 or rows == num_classes else {RAISES, SILENTLY_PLAUSIBLE}
    if kind == "num_classes_not_positive":
        if ratio > 0:
            return {RAISES}  # randint(0, num_classes)
        return {RAISES} if raw.num_classes < 0 and _has_padding_rows(counts) else {SILENTLY_PLAUSIBLE}
    if kind == "negative_num_queries":
        max_gt = max(counts)
        num_dn = 2 * max_gt * max(1, base.num_denoising // max_gt)
        return (
            {VISIBLY_BAD} if raw.num_queries >= -num_dn else {RAISES}
        )  # mask smaller than the dn rows / negative size
    if kind == "scale_not_finite":
        if math.isnan(raw.box_noise_scale):
            return {SILENTLY_PLAUSIBLE}  # NaN > 0 is False: no box noise at all
        return {VISIBLY_BAD} if _has_padding_rows(counts) else {SILENTLY_PLAUSIBLE}  # 0 * inf on padding rows
    if kind == "device_mismatch":
        return {RAISES, VISIBLY_BAD, SILENTLY_PLAUSIBLE}  # recorded, not predicted
    raise AssertionError(f"no expectation written for {kind}")


@pytest.mark.parametrize("kind", KINDS)
def test_family_reports_upstream_behaviour(kind):
    @settings(max_examples=15)
    @given(error_cases(VALID, [kind]))
    def check(error_case):
        outcome = classify_bad_input_behaviour(upstream, error_case)
        assert outcome.verdict in upstream_verdicts(error_case), f"{error_case.detail}: {outcome}"

    check()


def _one_box_case(**config) -> CdnCase:
    image = {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.6, 0.4, 0.2]])}
    return CdnCase(targets=(image,), num_classes=3, num_queries=4, num_denoising=10, seed=7, **config)


def _broken(case: CdnCase, kind: str, field: str, change) -> ErrorCase:
    image = {k: v.clone() for k, v in case.targets[0].items()}
    change(image)
    return ErrorCase(RawCall.from_case(case).with_(targets=(image,)), kind, field, 0, "by hand")


def test_pinned_upstream_outcomes():
    case = _one_box_case()
    nan = _broken(case, "nan_box", "boxes", lambda t: t["boxes"].__setitem__((0, 0), math.nan))
    padding_label = _broken(case, "label_equals_num_classes", "labels", lambda t: t["labels"].__setitem__(0, 3))
    past_padding = _broken(
        _one_box_case(label_noise_ratio=0.0), "label_out_of_range", "labels", lambda t: t["labels"].__setitem__(0, 4)
    )
    zero_width = _broken(case, "zero_width", "boxes", lambda t: t["boxes"].__setitem__((0, 2), 0.0))
    infinite_centre = _broken(case, "inf_box", "boxes", lambda t: t["boxes"].__setitem__((0, 0), math.inf))

    assert classify_bad_input_behaviour(upstream, nan).verdict == VISIBLY_BAD
    assert (
        classify_bad_input_behaviour(upstream, padding_label).verdict == SILENTLY_PLAUSIBLE
    )  # the zero padding embedding
    outcome = classify_bad_input_behaviour(upstream, past_padding)
    assert (outcome.verdict, outcome.exception_type, outcome.names_field) == (RAISES, "IndexError", False)
    # zero width: noise moves x by 0, the logit of width 0 is log(1e-5): finite
    assert classify_bad_input_behaviour(upstream, zero_width).verdict == SILENTLY_PLAUSIBLE
    assert classify_bad_input_behaviour(upstream, infinite_centre).verdict == SILENTLY_PLAUSIBLE

    validated = classify_bad_input_behaviour(reference, zero_width)
    assert (validated.verdict, validated.exception_type, validated.names_field) == (RAISES, "CdnInputError", True)


def test_validated_reference_raises_a_named_error_for_every_kind():
    report = run_bad_input_family(reference, VALID, examples_per_kind=3, seed=5)
    for result in report.results.values():
        if result.skipped:
            continue
        assert result.counts[RAISES] == result.total == 3, result.line()
        _, outcome = result.examples[RAISES]
        assert outcome.exception_type == "CdnInputError" and outcome.names_field, result.line()
    assert not report.failed(strict=True)
    assert report.summary() == f"raises {len(KINDS)} of {len(KINDS)} kinds"


def test_upstream_report_is_advisory_unless_strict():
    report = run_bad_input_family(
        upstream, VALID, kinds=["nan_box", "zero_width", "image_not_a_dict"], examples_per_kind=3
    )
    verdicts = {kind: r.verdict for kind, r in report.results.items()}
    assert verdicts == {"nan_box": VISIBLY_BAD, "zero_width": SILENTLY_PLAUSIBLE, "image_not_a_dict": RAISES}
    assert report.kinds_with(SILENTLY_PLAUSIBLE) == ["zero_width"]
    assert not report.failed(strict=False) and report.failed(strict=True)
    assert report.summary() == "raises 1, visibly bad 1, silent 1 of 3 kinds"
    assert all(line.startswith(kind) for line, kind in zip(report.lines(), verdicts, strict=True))


def test_family_is_reproducible():
    first = run_bad_input_family(upstream, VALID, kinds=["inf_box", "length_mismatch"], examples_per_kind=5, seed=3)
    again = run_bad_input_family(upstream, VALID, kinds=["inf_box", "length_mismatch"], examples_per_kind=5, seed=3)
    assert [r.counts for r in first.results.values()] == [r.counts for r in again.results.values()]


def test_a_hang_is_recorded_and_stops_the_family():
    def sleeps(*args, **kwargs):
        time.sleep(5)

    started = time.perf_counter()
    report = run_bad_input_family(
        sleeps, VALID, kinds=["nan_box", "zero_width"], examples_per_kind=3, time_limit_s=0.05
    )
    assert time.perf_counter() - started < 3
    assert report.results["nan_box"].verdict == HANGS and report.results["nan_box"].total == 1
    assert report.results["zero_width"].skipped.startswith("not run: sleeps hung on nan_box")


# --- what counts as visibly bad -----------------------------------------------------------------


def _outputs(num_dn=4, num_queries=2, bbox=None):
    mask = torch.zeros(num_dn + num_queries, num_dn + num_queries, dtype=torch.bool)
    meta = {"dn_positive_idx": (torch.tensor([0, 2]),), "dn_num_group": 2, "dn_num_split": [num_dn, num_queries]}
    return (torch.zeros(1, num_dn, 3), torch.zeros(1, num_dn, 4) if bbox is None else bbox, mask, meta)


def test_visible_problems():
    assert visible_problems(_outputs()) == []
    assert visible_problems((None, None, None, None)) == []
    assert "not 4 outputs" in visible_problems((1, 2))[0]
    assert "non-finite" in visible_problems(_outputs(bbox=torch.full((1, 4, 4), math.inf)))[0]
    assert "outside the logit range" in visible_problems(_outputs(bbox=torch.full((1, 4, 4), 12.0)))[0]
    assert visible_problems(_outputs(bbox=torch.full((1, 4, 4), -11.5129))) == []
    problems = visible_problems(_outputs(num_queries=-1))
    assert any("smaller than the 4 denoising rows" in p for p in problems) and any(
        "negative size" in p for p in problems
    )
    query_class, bbox, mask, meta = _outputs()
    assert "inconsistent shapes" in visible_problems((query_class[:, :3], bbox, mask, meta))[0]
    assert (
        "outside [0, 4)"
        in visible_problems((query_class, bbox, mask, {**meta, "dn_positive_idx": (torch.tensor([4]),)}))[0]
    )
    assert "dtype torch.int64" in visible_problems((query_class, bbox.long(), mask, meta))[0]


def test_kind_result_verdict_is_the_quietest_outcome():
    result = KindResult("k")
    assert result.verdict is None
    for verdict in (RAISES, SILENTLY_PLAUSIBLE, VISIBLY_BAD):
        from dnspec.checks.bad_input import BadInputOutcome

        result.add(ErrorCase(None, "k", "boxes", 0, verdict), BadInputOutcome(verdict, verdict))
    assert result.verdict == SILENTLY_PLAUSIBLE
    assert BadInputReport("x", {"k": result}).failed(strict=True)
