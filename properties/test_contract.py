"""The CDN contract, one test per invariant, for every implementation given by --impl.

The invariants live in dnspec.invariants (shared with `dnspec verify`); each test here
runs one of them over Hypothesis-generated ragged batches, with the classic edge cases
pinned as @example.
"""

from dnspec.pytest_plugin import check_property


def test_structure_shapes_dtypes_and_meta(impl, options):
    check_property("structure", impl, options)


def test_attention_mask_matches_layout_oracle(impl, options):
    check_property("attention_mask", impl, options)


def test_positive_indices_match_layout_oracle(impl, options):
    check_property("positive_indices", impl, options)


def test_class_queries_are_embedding_rows_with_valid_labels(impl, options):
    check_property("class_queries", impl, options)


def test_boxes_within_positive_and_negative_noise_bounds(impl, options):
    check_property("boxes", impl, options)


def test_inputs_are_untouched(impl, options):
    check_property("inputs_untouched", impl, options)


def test_same_seed_same_outputs(impl, options):
    check_property("determinism", impl, options)


def test_noise_free_output_equals_reference(impl, options):
    check_property("noiseless_matches_reference", impl, options)


def test_injected_noise_output_equals_reference(impl, options):
    check_property("injected_noise_matches_reference", impl, options)
