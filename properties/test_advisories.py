"""Upstream's questionable behaviours: xfail (reported) unless --strict-advisories or
the implementation declares fixes_advisories, then enforced."""

from dnspec.pytest_plugin import check_property


def test_advisory_boxes_always_in_logit_space(impl, options):
    check_property("box_output_space", impl, options)


def test_advisory_crossed_boxes_not_collapsed(impl, options):
    check_property("no_collapsed_boxes", impl, options)


def test_advisory_label_flip_rate_is_ratio_over_two(impl, options):
    check_property("label_flip_rate_is_ratio", impl, options)


def test_advisory_bad_input_raises_or_is_visibly_bad(impl, options):
    check_property("bad_input", impl, options)


def test_advisory_empty_batch_keeps_class_embed_in_the_graph(impl, options):
    check_property("empty_batch_in_graph", impl, options)
