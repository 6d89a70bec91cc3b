"""Device and dtype agreement: the same inputs give the same answer everywhere.

Deterministic outputs (mask, positive indices, group count, split, and the whole
noise-free output with ratio 0 and scale 0) must be exactly equal across devices; for
implementations that accept an injected draw, every output must agree under the same
draw, within the dtype's tolerance. Across dtypes, outputs must come back in the input's
dtype and agree with the float64 run within the tolerance of :mod:`dnspec.tolerances`.
Boxes are compared decoded (sigmoid of the logits): near the clamp of inverse_sigmoid a
tiny difference in a side moves its logit a lot and its box not at all.
"""

from __future__ import annotations

import torch

from dnspec.calling import call_implementation
from dnspec.decode import decode_boxes, expects_logit_space
from dnspec.invariants import PropertyViolation, assert_outputs_equal, layout_of
from dnspec.noise import draw_noise
from dnspec.tolerances import tolerance_for


def available_devices() -> list[str]:
    """Device types torch can use here: always cpu, plus cuda and mps when present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def _draw_for(case, dtype=torch.float64):
    layout = layout_of(case)
    return draw_noise(
        case.batch_size,
        layout.num_dn_rows,
        case.num_classes,
        case.label_noise_ratio,
        case.box_noise_scale,
        device="cpu",
        box_dtype=dtype,
        generator=torch.Generator().manual_seed(case.seed),
    )


def _in_box_space(outputs, case, impl):
    if outputs[0] is None:
        return outputs
    logit = expects_logit_space(case.box_noise_scale, impl.fixes_advisories)
    return (outputs[0], decode_boxes(outputs[1].detach().cpu(), logit), outputs[2], outputs[3])


def _check_output_place(outputs, case, what):
    if outputs[0] is None:
        return
    for name, value, dtype in (("input_query_class", outputs[0], case.dtype), ("input_query_bbox", outputs[1], case.dtype)):
        if value.device.type != torch.device(case.device).type:
            raise PropertyViolation(f"{what}: {name} is on {value.device}, the inputs on {case.device}")
        if value.dtype != dtype:
            raise PropertyViolation(f"{what}: {name} has dtype {value.dtype}, the inputs {dtype}")
    if outputs[2].device.type != torch.device(case.device).type:
        raise PropertyViolation(f"{what}: attn_mask is on {outputs[2].device}, the inputs on {case.device}")


def check_device_agreement(impl, case, device: str):
    """``impl`` on ``device`` agrees with ``impl`` on the CPU (``device`` may be cpu:
    then two CPU runs, which still catches nondeterminism). Noise-free outputs exactly
    (their boxes within the dtype's tolerance when they are logits, as for an
    implementation that fixes the advisories: log may differ by an ulp across devices);
    with an injected draw, everything within the dtype's tolerance; outputs on the device."""
    cpu_case, dev_case = case.to("cpu"), case.to(device)
    quiet = dict(label_noise_ratio=0.0, box_noise_scale=0.0)
    a = call_implementation(impl, cpu_case.with_config(**quiet))
    b = call_implementation(impl, dev_case.with_config(**quiet))
    _check_output_place(b, dev_case, f"noise-free call on {device}")
    if impl.fixes_advisories:
        # noise-free boxes are logits here: log() may differ by an ulp between devices
        quiet_case = case.with_config(**quiet)
        assert_outputs_equal(
            _in_box_space(a, quiet_case, impl), _in_box_space(b, quiet_case, impl),
            f"noise-free output on cpu vs {device}", tolerance_for(case.dtype),
        )
    else:
        assert_outputs_equal(a, b, f"noise-free output on cpu vs {device}")
    if impl.accepts_noise and layout_of(case).produces_output:
        noise = _draw_for(case, case.dtype)
        a = call_implementation(impl, cpu_case, noise=noise)
        b = call_implementation(impl, dev_case, noise=noise.to(device))
        _check_output_place(b, dev_case, f"call on {device}")
        assert_outputs_equal(
            _in_box_space(a, case, impl), _in_box_space(b, case, impl), f"output under one draw on cpu vs {device}", tolerance_for(case.dtype)
        )


def check_dtype_agreement(impl, case, dtype: torch.dtype):
    """``impl`` with boxes and embedding in ``dtype`` returns outputs in ``dtype`` that
    agree with its float64 run within the dtype's tolerance (under one injected draw
    when the implementation accepts one, else noise-free)."""
    if not impl.accepts_noise:
        case = case.with_config(label_noise_ratio=0.0, box_noise_scale=0.0)
    wide, narrow = case.to(dtype=torch.float64), case.to(dtype=dtype)
    kwargs_wide, kwargs_narrow = {}, {}
    if impl.accepts_noise and layout_of(case).produces_output:
        noise = _draw_for(case)
        kwargs_wide = {"noise": noise.to(case.device)}
        kwargs_narrow = {"noise": noise.to(case.device, box_dtype=dtype)}
    a = call_implementation(impl, wide, **kwargs_wide)
    b = call_implementation(impl, narrow, **kwargs_narrow)
    _check_output_place(b, narrow, f"call in {dtype}")
    assert_outputs_equal(
        _in_box_space(b, case, impl),
        _in_box_space(a, case, impl),
        f"output in {dtype} vs float64",
        tolerance_for(dtype),
    )
