"""The property registry: the one place both ``pytest properties`` and ``dnspec verify``
get their properties from (:mod:`dnspec.running.runner` runs them).

A :class:`Property` names an invariant, its family and kind, and how to check it:
``contract`` and ``agreement`` properties are checked on Hypothesis-generated cases, in
every input regime (their ``check`` takes a :class:`~dnspec.calling.trial.Trial`, and a variant
where the property has variants); ``statistical`` and ``advisory`` ones on large fixed
seeded batches, and ``history`` ones (``call_history``) on a small fixed sequence of calls
(their ``check`` takes the implementation, a seed and a device).
Advisories are enforced only under ``strict`` or for implementations that declare
``fixes_advisories``; otherwise a violation is reported as an advisory, not a failure.
``forces`` names the regimes every call of a property is in whatever case it is given
(the noise-free differential check calls with both noises off), so that a report can say
it could not be judged elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from dnspec.checks import (
    advisories,
    agreement,
    box_checks,
    call_history,
    distributions,
    fresh_noise,
    gradients,
    invariants,
    mask_checks,
    process_state,
)
from dnspec.checks import bad_input as bad_input_family

CONTRACT, AGREEMENT, STATISTICAL, ADVISORY = "contract", "agreement", "statistical", "advisory"
HISTORY = "history"  # a contract property judged on a fixed workload: the calls' order is the input
GENERATED_KINDS = (CONTRACT, AGREEMENT)  # checked on generated cases, in every regime


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
    threads: int = 1  # torch intra-op threads while checking (the cases are small: waking threads costs more)
    convention: str | None = None  # an empty-batch convention every all-empty batch must follow (None: any known one)
    jobs: int = 1  # worker processes for the sweeps, fixed batches and shrinks (dnspec.calling.workers)
    in_process: bool = False  # call the implementation in this process (dnspec verify --in-process, for pdb)
    contract: str | None = None  # a lineage contract (dnspec.contract.lineages; None: rtdetr, with lineage recognition)
    against: object = None  # THEIRS (an Implementation): the oracle of the differential properties (--against)


@dataclass(frozen=True)
class Property:
    name: str
    family: str
    kind: str
    summary: str
    check: Callable
    requires: Callable = field(default=lambda impl, options, variant: None)
    variants: Callable = field(default=lambda impl, options: [None])
    forces: frozenset = frozenset()
    enforced_by_fixes: bool = True  # an advisory that fixes_advisories implementations are held to

    def skip_reason(self, impl, options: RunOptions, variant=None) -> str | None:
        return self.requires(impl, options, variant)


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
    Property(
        "structure",
        "structure",
        CONTRACT,
        "4 outputs of the right shapes, dtypes and device; dn_num_split == [N, Q]; dn_num_group == max(1, num_denoising // max_gt); (None,)*4 when nothing to denoise",
        invariants.check_structure,
    ),
    Property(
        "attention_mask",
        "attention mask",
        CONTRACT,
        "the mask equals the layout oracle: object queries see no dn row, dn rows see object queries and their own group only",
        mask_checks.check_attention_mask,
    ),
    Property(
        "positive_indices",
        "positive indices",
        CONTRACT,
        "dn_positive_idx[i] = positive rows of image i's real boxes in every group, ascending, int64, length n_i * G",
        invariants.check_positive_indices,
    ),
    Property(
        "class_queries",
        "class queries",
        CONTRACT,
        "each class query is a row of class_embed.weight; padding rows class num_classes; real rows in [0, num_classes); exact labels at ratio 0",
        invariants.check_class_queries,
    ),
    Property(
        "boxes",
        "boxes",
        CONTRACT,
        "padding value, gt boxes at scale 0, corners in [0, 1], positives moved by |u| < 1 and negatives by 1 <= |u| < 2 times side/2*scale before the clip",
        box_checks.check_boxes,
    ),
    Property(
        "inputs_untouched",
        "inputs untouched",
        CONTRACT,
        "targets and class_embed weights are bit-identical after the call",
        invariants.check_inputs_untouched,
    ),
    Property(
        "determinism",
        "determinism",
        CONTRACT,
        "the same torch.manual_seed gives the same outputs",
        invariants.check_determinism,
    ),
    Property(
        "noiseless_matches_reference",
        "differential",
        CONTRACT,
        "with label_noise_ratio 0 and box_noise_scale 0, outputs equal the reference's exactly",
        invariants.check_noiseless_matches_reference,
        forces=frozenset({"box_noise_scale_0", "label_noise_ratio_0"}),
    ),
    Property(
        "injected_noise_matches_reference",
        "differential",
        CONTRACT,
        "under the same injected NoiseDraw, outputs equal the reference's bit for bit",
        invariants.check_injected_noise_matches_reference,
        requires=_needs_injected_noise,
    ),
    Property(
        "device_agreement",
        "device/dtype",
        AGREEMENT,
        "the same inputs on cpu and on another device give the same outputs (exact when noise-free)",
        agreement.check_device_agreement,
        requires=_device_available,
        variants=_device_variants,
    ),
    Property(
        "dtype_agreement",
        "device/dtype",
        AGREEMENT,
        "outputs come back in the inputs' dtype and agree with the float64 run within the dtype's tolerance",
        agreement.check_dtype_agreement,
        requires=_dtype_supported,
        variants=_dtype_variants,
    ),
    Property(
        "class_embed_gradient",
        "autograd",
        CONTRACT,
        "with class_embed requiring grad the class queries require grad, and a backward pass puts on each weight row the scatter-add of the cotangents of the queries carrying that class",
        gradients.check_class_embed_gradient,
    ),
    Property(
        "padding_row_gradient",
        "autograd",
        CONTRACT,
        "the padding row of class_embed.weight (padding_idx = num_classes) receives zero gradient",
        gradients.check_padding_row_gradient,
    ),
    Property(
        "no_grad_outputs",
        "autograd",
        CONTRACT,
        "a call under torch.no_grad works and returns outputs that do not require grad",
        gradients.check_no_grad_outputs,
    ),
    Property(
        "autocast_outputs",
        "autograd",
        CONTRACT,
        "a call under torch.autocast (bfloat16 on the CPU, float16 on CUDA) works and returns finite class queries and boxes",
        gradients.check_autocast_outputs,
    ),
    Property(
        "fresh_noise",
        "noise",
        CONTRACT,
        "with noise on, two consecutive calls on the same inputs draw different noise, and the RNG state a call leaves depends on the state it found (no reseeding, no replayed noise)",
        fresh_noise.check_fresh_noise,
    ),
    Property(
        "process_state",
        "process state",
        CONTRACT,
        "after each call, grad mode, inference mode, default dtype, autocast, deterministic algorithms, intra-op threads and anomaly detection are what they were",
        process_state.check_process_state,
    ),
    Property(
        "call_history",
        "process state",
        HISTORY,
        "the same inputs under the same torch.manual_seed give the fresh call's outputs after other calls too (no generator seeded once, no stale cache, no call counter; 15 calls, once per run)",
        call_history.check_call_history,
    ),
    Property(
        "label_flip_rate",
        "label statistics",
        STATISTICAL,
        "labels change at rate ratio/2 * (1 - 1/num_classes) on positive and on negative rows, never on padding (binomial, alpha 1e-6)",
        distributions.check_label_flip_rate,
    ),
    Property(
        "replacement_uniform",
        "label statistics",
        STATISTICAL,
        "replacement labels are uniform over the other classes (chi-square, alpha 1e-6)",
        distributions.check_replacement_uniform,
    ),
    Property(
        "label_noise_independence",
        "label statistics",
        STATISTICAL,
        "label noise independent across groups, positive/negative twins and images (chi-square, alpha 1e-6 in all)",
        distributions.check_label_noise_independence,
    ),
    Property(
        "box_magnitudes",
        "box statistics",
        STATISTICAL,
        "positive magnitudes U[0,1), negative U[1,2) (KS), fair signs per coordinate (binomial); alpha 1e-6 in all",
        distributions.check_box_magnitudes,
    ),
    Property(
        "noise_independence",
        "box statistics",
        STATISTICAL,
        "box noise independent across coordinates, corners, groups, positive/negative twins and images (chi-square, alpha 1e-6 in all)",
        distributions.check_noise_independence,
    ),
    Property(
        "box_output_space",
        "advisories",
        ADVISORY,
        "boxes in logit space at every box_noise_scale (upstream: box space at scale 0)",
        advisories.check_box_output_space,
    ),
    Property(
        "no_collapsed_boxes",
        "advisories",
        ADVISORY,
        "noised boxes whose corners cross are not collapsed to side 1e-5 (upstream: ~1/4 of negatives per axis)",
        advisories.check_no_collapsed_boxes,
    ),
    Property(
        "empty_batch_in_graph",
        "advisories",
        ADVISORY,
        "an all-empty batch keeps class_embed in the autograd graph, so DDP ranks stay in step (upstream: four Nones; RT-DETR #672, lightly-train #446)",
        advisories.check_empty_batch_in_graph,
        enforced_by_fixes=False,
    ),
    Property(
        "label_flip_rate_is_ratio",
        "advisories",
        ADVISORY,
        "the label changes with probability ratio/2 exactly (upstream: ratio/2 * (1 - 1/num_classes))",
        advisories.check_label_flip_rate,
    ),
    Property(
        "bad_input",
        "bad input",
        ADVISORY,
        "every kind of bad input (NaN/zero-size/outside boxes, bad labels, shapes, config) raises or gives visibly bad output, never silently plausible output",
        bad_input_family.check_bad_input,
    ),
)

BY_NAME = {p.name: p for p in PROPERTIES}
FAMILIES = tuple(dict.fromkeys(p.family for p in PROPERTIES))


def enforced(prop: Property, impl, options: RunOptions) -> bool:
    """Whether a violation of ``prop`` fails: always, except for advisories, which fail
    only under ``strict`` or for an implementation that declares ``fixes_advisories``."""
    return prop.kind != ADVISORY or options.strict or (impl.fixes_advisories and prop.enforced_by_fixes)


def variant_name(variant) -> str:
    return str(variant).replace("torch.", "")


def label(prop: Property, variant=None) -> str:
    """``'boxes'``, ``'dtype_agreement[bfloat16]'``."""
    return prop.name if variant is None else f"{prop.name}[{variant_name(variant)}]"
