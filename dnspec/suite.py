"""The property registry and its runner: the one place both ``pytest properties`` and
``dnspec verify`` get their properties from.

A :class:`Property` names an invariant, its family and kind, and how to check it:
``contract`` and ``agreement`` properties are checked on Hypothesis-generated cases
(:func:`run_property` builds the ``@given`` test, with ``@example`` pins for the classic
edge cases and ``event()`` buckets); ``statistical`` and ``advisory`` ones on large
fixed seeded batches. Advisories are enforced only under ``strict`` or for
implementations that declare ``fixes_advisories``; otherwise a violation is reported as
an advisory, not a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from hypothesis import HealthCheck, event, example, given, seed as hypothesis_seed, settings

from dnspec import advisories, agreement, bad_input_family, distributions, invariants
from dnspec.calling import HANGS, ImplementationError, ImplementationTimeout
from dnspec.cases import CdnCase
from dnspec.strategies import cdn_cases, edge_case_buckets

CONTRACT, AGREEMENT, STATISTICAL, ADVISORY = "contract", "agreement", "statistical", "advisory"


@dataclass(frozen=True)
class RunOptions:
    """How to run: where the cases live, whether advisories are enforced, and the knobs
    ``dnspec verify`` exposes (None = the loaded Hypothesis profile's value)."""

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    strict: bool = False
    max_examples: int | None = None
    seed: int | None = None
    time_limit_s: float | None = None


@dataclass(frozen=True)
class Property:
    name: str
    family: str
    kind: str
    summary: str
    check: Callable
    requires: Callable = field(default=lambda impl, options, variant: None)
    variants: Callable = field(default=lambda impl, options: [None])

    def skip_reason(self, impl, options: RunOptions, variant=None) -> str | None:
        return self.requires(impl, options, variant)


class PropertySkipped(Exception):
    """The property does not apply to this implementation here (the message says why)."""


class AdvisoryViolated(Exception):
    """An advisory does not hold, and is not enforced for this implementation."""


def _needs_injected_noise(impl, options, variant):
    if not impl.accepts_noise:
        return f"{impl.name} does not accept an injected noise draw (no 'noise' keyword)"
    if impl.fixes_advisories:
        return f"{impl.name} fixes the upstream advisories, so it departs from the reference under a draw by design"
    return None


def _device_variants(impl, options):
    """The devices to compare with the CPU: the one asked for, else cpu and cuda (the
    cuda variant is reported as skipped where no GPU exists)."""
    return [options.device] if options.device != "cpu" else ["cpu", "cuda"]


def _device_available(impl, options, device):
    if device not in agreement.available_devices():
        return f"no {device} device here; run on a machine with one (e.g. `dnspec verify SPEC --device {device}`)"
    if device.split(":")[0] not in impl.devices:
        return f"{impl.name} does not declare device {device}"
    return None


LOW_PRECISION = (torch.float32, torch.bfloat16, torch.float16)


def _dtype_variants(impl, options):
    return list(LOW_PRECISION)


def _dtype_supported(impl, options, dtype):
    if dtype not in impl.dtypes:
        return f"{impl.name} does not declare dtype {dtype}"
    return None


PROPERTIES: tuple[Property, ...] = (
    Property("structure", "structure", CONTRACT,
             "4 outputs of the right shapes, dtypes and device; dn_num_split == [N, Q]; dn_num_group == max(1, num_denoising // max_gt); (None,)*4 when nothing to denoise",
             invariants.check_structure),
    Property("attention_mask", "attention mask", CONTRACT,
             "the mask equals the layout oracle: object queries see no dn row, dn rows see object queries and their own group only",
             invariants.check_attention_mask),
    Property("positive_indices", "positive indices", CONTRACT,
             "dn_positive_idx[i] = positive rows of image i's real boxes in every group, ascending, int64, length n_i * G",
             invariants.check_positive_indices),
    Property("class_queries", "class queries", CONTRACT,
             "each class query is a row of class_embed.weight; padding rows class num_classes; real rows in [0, num_classes); exact labels at ratio 0",
             invariants.check_class_queries),
    Property("boxes", "boxes", CONTRACT,
             "padding value, gt boxes at scale 0, corners in [0, 1], positives moved by |u| < 1 and negatives by 1 <= |u| < 2 times side/2*scale before the clip",
             invariants.check_boxes),
    Property("inputs_untouched", "inputs untouched", CONTRACT,
             "targets and class_embed weights are bit-identical after the call",
             invariants.check_inputs_untouched),
    Property("determinism", "determinism", CONTRACT,
             "the same torch.manual_seed gives the same outputs",
             invariants.check_determinism),
    Property("noiseless_matches_reference", "differential", CONTRACT,
             "with label_noise_ratio 0 and box_noise_scale 0, outputs equal the reference's exactly",
             invariants.check_noiseless_matches_reference),
    Property("injected_noise_matches_reference", "differential", CONTRACT,
             "under the same injected NoiseDraw, outputs equal the reference's bit for bit",
             invariants.check_injected_noise_matches_reference, requires=_needs_injected_noise),
    Property("device_agreement", "device/dtype", AGREEMENT,
             "the same inputs on cpu and on another device give the same outputs (exact when noise-free)",
             agreement.check_device_agreement, requires=_device_available, variants=_device_variants),
    Property("dtype_agreement", "device/dtype", AGREEMENT,
             "outputs come back in the inputs' dtype and agree with the float64 run within the dtype's tolerance",
             agreement.check_dtype_agreement, requires=_dtype_supported, variants=_dtype_variants),
    Property("label_flip_rate", "label statistics", STATISTICAL,
             "labels change at rate ratio/2 * (1 - 1/num_classes) on positive and on negative rows, never on padding (binomial, alpha 1e-6)",
             distributions.check_label_flip_rate),
    Property("replacement_uniform", "label statistics", STATISTICAL,
             "replacement labels are uniform over the other classes (chi-square, alpha 1e-6)",
             distributions.check_replacement_uniform),
    Property("label_noise_independence", "label statistics", STATISTICAL,
             "label noise independent across groups, positive/negative twins and images (chi-square, alpha 1e-6 in all)",
             distributions.check_label_noise_independence),
    Property("box_magnitudes", "box statistics", STATISTICAL,
             "positive magnitudes U[0,1), negative U[1,2) (KS), fair signs per coordinate (binomial); alpha 1e-6 in all",
             distributions.check_box_magnitudes),
    Property("noise_independence", "box statistics", STATISTICAL,
             "box noise independent across coordinates, corners, groups, positive/negative twins and images (chi-square, alpha 1e-6 in all)",
             distributions.check_noise_independence),
    Property("box_output_space", "advisories", ADVISORY,
             "boxes in logit space at every box_noise_scale (upstream: box space at scale 0)",
             advisories.check_box_output_space),
    Property("no_collapsed_boxes", "advisories", ADVISORY,
             "noised boxes whose corners cross are not collapsed to side 1e-5 (upstream: ~1/4 of negatives per axis)",
             advisories.check_no_collapsed_boxes),
    Property("label_flip_rate_is_ratio", "advisories", ADVISORY,
             "the label changes with probability ratio/2 exactly (upstream: ratio/2 * (1 - 1/num_classes))",
             advisories.check_label_flip_rate),
    Property("bad_input", "bad input", ADVISORY,
             "every kind of bad input (NaN/zero-size/outside boxes, bad labels, shapes, config) raises or gives visibly bad output, never silently plausible output",
             bad_input_family.check_bad_input),
)

BY_NAME = {p.name: p for p in PROPERTIES}
FAMILIES = tuple(dict.fromkeys(p.family for p in PROPERTIES))


def edge_examples(device: str = "cpu", dtype=torch.float32) -> list[CdnCase]:
    """The classic edge cases, pinned with @example so every run checks them."""
    box = lambda *b: torch.tensor([list(b)], dtype=dtype, device=device)
    empty = {"labels": torch.zeros(0, dtype=torch.int64, device=device), "boxes": torch.zeros(0, 4, dtype=dtype, device=device)}
    one = {"labels": torch.tensor([1], device=device), "boxes": box(0.5, 0.5, 0.2, 0.2)}
    border = {"labels": torch.tensor([0], device=device), "boxes": box(0.05, 0.95, 0.1, 0.1)}
    crowded = {
        "labels": torch.arange(5, device=device) % 3,
        "boxes": torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 5, dtype=dtype, device=device),
    }
    common = dict(num_classes=3, num_queries=4, embed_dim=4, seed=1, dtype=dtype, device=device)
    return [
        CdnCase(targets=(empty, empty), note="all-empty batch", **common),
        CdnCase(targets=(one, empty), note="one image with 0 boxes", **common),
        CdnCase(targets=(crowded, one), num_denoising=3, note="max_gt > num_denoising", **{**common}),
        CdnCase(targets=(one, border), num_denoising=1, note="num_group == 1", **common),
        CdnCase(targets=(one,), num_denoising=0, note="num_denoising == 0", **common),
        CdnCase(targets=(border,), label_noise_ratio=0.0, box_noise_scale=0.0, note="no noise", **common),
        CdnCase(targets=(one, border), box_noise_scale=0.4, note="box_noise_scale 0.4", **common),
        CdnCase(targets=(one,), box_noise_scale=2.0, note="box_noise_scale 2", **common),
    ]


def _enforced(prop: Property, impl, options: RunOptions) -> bool:
    return prop.kind != ADVISORY or options.strict or impl.fixes_advisories


def run_property(prop: Property, impl, options: RunOptions = RunOptions(), variant=None) -> str | None:
    """Check ``prop`` on ``impl``. Returns if it holds (with the check's one-line note,
    if it gives one, e.g. the bad-input summary); raises PropertySkipped,
    AdvisoryViolated (a violated advisory that is not enforced), or the violation
    (AssertionError, with Hypothesis' falsifying example in its notes)."""
    reason = prop.skip_reason(impl, options, variant)
    if reason:
        raise PropertySkipped(reason)
    if impl.name in HANGS.hung:
        raise ImplementationTimeout(f"{impl.name} hung earlier in this run (first hanging case: {HANGS.hung[impl.name]!r})")
    try:
        if prop.kind in (CONTRACT, AGREEMENT):
            _run_hypothesis(prop, impl, options, variant)
            return None
        seed = distributions.DEFAULT_SEED if options.seed is None else options.seed
        from dnspec import calling

        with _per_call_limit(calling, options.time_limit_s):
            return prop.check(impl, seed=seed, device=options.device)
    except AssertionError as violation:
        # a crash or hang of the implementation is a failure, advisory or not
        if not _enforced(prop, impl, options) and not isinstance(violation, ImplementationError):
            raise AdvisoryViolated(str(violation)) from violation
        raise


def _run_hypothesis(prop: Property, impl, options: RunOptions, variant) -> None:
    from dnspec import calling

    base_device = "cpu" if prop.kind == AGREEMENT and prop.name == "device_agreement" else options.device
    strategy = cdn_cases(device=base_device, dtype=options.dtype if prop.name != "dtype_agreement" else torch.float64)

    def check_one_case(case):
        for bucket in edge_case_buckets(case):
            event(bucket)
        with _per_call_limit(calling, options.time_limit_s):
            if variant is None:
                prop.check(impl, case)
            else:
                prop.check(impl, case, variant)

    test = given(case=strategy)(check_one_case)
    for case in edge_examples(base_device, options.dtype if prop.name != "dtype_agreement" else torch.float64):
        test = example(case=case)(test)
    overrides = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
    if options.max_examples is not None:
        overrides["max_examples"] = options.max_examples
    test = settings(settings.default, **overrides)(test)
    if options.seed is not None:
        test = hypothesis_seed(options.seed)(test)
    # one example database entry per (property, implementation, variant)
    test.hypothesis.inner_test._hypothesis_internal_add_digest = f"{prop.name}|{impl.name}|{variant}|{options.device}|{options.dtype}".encode()
    test()


class _per_call_limit:
    """Apply ``time_limit_s`` to every implementation call made while checking one case."""

    def __init__(self, calling_module, seconds):
        self.calling, self.seconds = calling_module, seconds

    def __enter__(self):
        self.previous = self.calling.DEFAULT_TIME_LIMIT_S_ACTIVE
        self.calling.DEFAULT_TIME_LIMIT_S_ACTIVE = self.seconds

    def __exit__(self, *exc):
        self.calling.DEFAULT_TIME_LIMIT_S_ACTIVE = self.previous
        return False


@dataclass(frozen=True)
class Outcome:
    """The result of one property on one implementation (one variant)."""

    prop: Property
    variant: object
    status: str  # "pass" | "fail" | "skip" | "advisory"
    message: str = ""
    details: str = ""
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return self.prop.name if self.variant is None else f"{self.prop.name}[{_variant_name(self.variant)}]"


def _variant_name(variant) -> str:
    return str(variant).replace("torch.", "")


def evaluate(prop: Property, impl, options: RunOptions = RunOptions(), variant=None) -> Outcome:
    """Run one property and turn every way it can end into an Outcome (never raises,
    except KeyboardInterrupt)."""
    started = time.perf_counter()
    elapsed = lambda: time.perf_counter() - started
    try:
        note = run_property(prop, impl, options, variant)
    except PropertySkipped as skipped:
        return Outcome(prop, variant, "skip", str(skipped), seconds=elapsed())
    except AdvisoryViolated as advisory:
        return Outcome(prop, variant, "advisory", _first_line(str(advisory)), str(advisory), elapsed())
    except KeyboardInterrupt:
        raise
    except BaseException as failure:  # a user's implementation may raise anything
        details = "\n".join([f"{type(failure).__name__}: {failure}", *getattr(failure, "__notes__", [])])
        return Outcome(prop, variant, "fail", _first_line(f"{failure}") or type(failure).__name__, details, elapsed())
    return Outcome(prop, variant, "pass", note or "", seconds=elapsed())


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def evaluate_all(impl, options: RunOptions = RunOptions(), names: list[str] | None = None, on_outcome=None) -> list[Outcome]:
    """Every property (or those named) over every variant; ``on_outcome`` is called after each."""
    outcomes = []
    for prop in PROPERTIES:
        if names and prop.name not in names:
            continue
        for variant in prop.variants(impl, options):
            outcome = evaluate(prop, impl, options, variant)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return outcomes
