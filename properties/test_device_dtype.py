"""Device and dtype agreement (torchvision style: devices from cpu_and_cuda(), the CUDA
case skipping cleanly; dtype tolerances in dnspec.contract.tolerances)."""

import pytest

from dnspec.checks.suite import LOW_PRECISION
from dnspec.pytest_plugin import check_property, cpu_and_cuda


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_same_outputs_on_cpu_and_device(impl, options, device, regime):
    check_property("device_agreement", impl, options, device, regime)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=lambda d: str(d).replace("torch.", ""))
def test_outputs_in_input_dtype_agree_with_float64(impl, options, dtype, regime):
    check_property("dtype_agreement", impl, options, dtype, regime)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_statistics_hold_on_device(impl, options, device):
    """Black-box statistics hold on every device (drawn there, not on the CPU)."""
    from dataclasses import replace

    on_device = replace(options, device=device)
    for name in ("label_flip_rate", "box_magnitudes"):
        check_property(name, impl, on_device)


def test_an_empty_group_without_index_lists_is_compared_not_crashed_on():
    """Dome-DETR's all-empty batch: zero-width queries, a [Q, Q] mask and dn_meta whose
    dn_positive_idx is None. Two such calls agree (no unreadable-output divergence in the
    agreement properties); None in one call only is a dn_positive_idx difference."""
    import torch

    from dnspec.checks.agreement import _same_layout
    from dnspec.checks.violations import PropertyViolation

    def empty(idx):
        meta = {"dn_positive_idx": idx, "dn_num_group": 0, "dn_num_split": [0, 3]}
        return (torch.zeros(2, 0, 4), torch.zeros(2, 0, 4), torch.zeros(3, 3, dtype=torch.bool), meta)

    from dnspec.checks.invariants import assert_outputs_equal

    for compare in (_same_layout, assert_outputs_equal):  # the agreement checks' and determinism's comparisons
        compare(empty(None), empty(None), "two calls", check="determinism")
        with pytest.raises(PropertyViolation) as caught:
            compare(empty(None), empty([torch.zeros(0, dtype=torch.int64)] * 2), "two calls", check="determinism")
        assert caught.value.check == "determinism.dn_positive_idx"
