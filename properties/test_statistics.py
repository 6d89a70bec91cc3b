"""Distributions of the noise (scipy.stats; fixed seed; false alarm <= 1e-6 per test)."""

from dnspec.pytest_plugin import check_property


def test_label_flip_rate(impl, options):
    check_property("label_flip_rate", impl, options)


def test_replacement_labels_uniform(impl, options):
    check_property("replacement_uniform", impl, options)


def test_box_noise_magnitudes_and_signs(impl, options):
    check_property("box_magnitudes", impl, options)


def test_box_noise_independent_across_coordinates_groups_images(impl, options):
    check_property("noise_independence", impl, options)


def test_label_noise_independent_across_groups_twins_images(impl, options):
    check_property("label_noise_independence", impl, options)
