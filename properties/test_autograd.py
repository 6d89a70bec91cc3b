"""The training loop's view of the builder (dnspec.checks.gradients), one test per property and
input regime, for every implementation given by --impl: gradients into the class
embedding, the padding row's zero gradient, calls under no_grad and under autocast."""

from dnspec.pytest_plugin import check_property


def test_gradient_into_class_embed_is_the_scatter_add_of_cotangents(impl, options, regime):
    check_property("class_embed_gradient", impl, options, regime=regime)


def test_padding_row_of_class_embed_gets_no_gradient(impl, options, regime):
    check_property("padding_row_gradient", impl, options, regime=regime)


def test_outputs_under_no_grad_do_not_require_grad(impl, options, regime):
    check_property("no_grad_outputs", impl, options, regime=regime)


def test_call_under_autocast_works_and_is_finite(impl, options, regime):
    check_property("autocast_outputs", impl, options, regime=regime)
