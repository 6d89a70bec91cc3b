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
