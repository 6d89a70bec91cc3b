"""The CDN contract, one test per invariant and input regime, for every implementation
given by --impl.

The invariants live in dnspec.checks.invariants (shared with `dnspec verify`); each test here
reads one of them in one regime (the test id names it: ``[reference-box_noise_scale_0]``)
from the session's sweep of that regime: Hypothesis-generated ragged batches in the
regime only, its canonical case pinned as @example.
"""

from dnspec.pytest_plugin import check_property


def test_structure_shapes_dtypes_and_meta(impl, options, regime):
    check_property("structure", impl, options, regime=regime)


def test_attention_mask_matches_layout_oracle(impl, options, regime):
    check_property("attention_mask", impl, options, regime=regime)


def test_positive_indices_match_layout_oracle(impl, options, regime):
    check_property("positive_indices", impl, options, regime=regime)


def test_class_queries_are_embedding_rows_with_valid_labels(impl, options, regime):
    check_property("class_queries", impl, options, regime=regime)


def test_boxes_within_positive_and_negative_noise_bounds(impl, options, regime):
    """Per real row and axis, with ground-truth corners c1 < c2, side s and
    d = s/2 * box_noise_scale, decoding sigmoid(bbox) to corners X1, X2:

    - padding rows hold inverse_sigmoid(0) = log(1e-5) (logit space) or 0 (box space);
    - box_noise_scale == 0: real rows equal the ground truth (box space upstream);
    - every corner lies in [0, 1] (the clip);
    - positive rows: X in clip([c - d, c + d])             (|u| < 1);
    - negative rows: X in clip([c - 2d, c - d]) U clip([c + d, c + 2d])   (1 <= |u| < 2);
      clip is monotone, so clipping the interval ends is exact, and a corner pinned at 0
      or 1 is accepted exactly when its interval reaches past the border;
    - crossed corners (X2 < X1 before the inverse sigmoid, upstream): the side comes back
      clamped to ~1e-5 and only the centre survives; accepted when the side is <= 2e-5
      and the centre lies in the halved sum of two intervals in which c2 can fall below c1;
    - implementations fixing the advisories may return the corners swapped (min, max).
    Tolerance: the dtype's (dnspec/tolerances.py) plus 2e-5 for the inverse_sigmoid clamp.
    """
    check_property("boxes", impl, options, regime=regime)


def test_inputs_are_untouched(impl, options, regime):
    check_property("inputs_untouched", impl, options, regime=regime)


def test_same_seed_same_outputs(impl, options, regime):
    check_property("determinism", impl, options, regime=regime)


def test_noise_free_output_equals_reference(impl, options, regime):
    check_property("noiseless_matches_reference", impl, options, regime=regime)


def test_injected_noise_output_equals_reference(impl, options, regime):
    check_property("injected_noise_matches_reference", impl, options, regime=regime)
