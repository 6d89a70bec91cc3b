"""One generated case and every call the checks make on it, each made once.

The call stage of a verify run. A :class:`Trial` holds one :class:`~dnspec.generation.cases.CdnCase`
and makes the implementation's calls that the contract checks ask for, memoized by what
varies between them: the configuration (the case's own, or noise-free), the device, the
dtype, an injected noise draw, and a repeat number (two calls that must be independent,
for determinism). So the structure, mask, index, class and box checks all read one call;
the noise-free differential check and the device check share theirs; and a crash is
raised (the same ImplementationError) to every check that needed that call, so that it
is one failure seen by several properties.

Every call gets fresh copies of the targets and its own class embedding built from the
case's seed (an implementation that mutates its inputs cannot change what another check
sees); the main call's arguments are kept for :func:`dnspec.checks.invariants.check_inputs_untouched`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from dnspec.calling import call as calling
from dnspec.calling.call import call_implementation
from dnspec.contract.noise import NoiseDraw, draw_noise

NOISE_FREE = "noise-free"


@dataclass(frozen=True)
class CallKey:
    """What distinguishes one call of a trial from another."""

    config: str | None = None  # None: the case's own; NOISE_FREE: ratio 0, scale 0
    device: str | None = None  # None: the case's device
    dtype: torch.dtype | None = None  # None: the case's dtype
    injected: bool = False  # with the trial's injected draw (cast to the call's dtype and device)
    repeat: int = 0
    grad: bool = False  # under autograd (every other call runs under torch.no_grad, as inference would)
    autocast: bool = False  # under torch.autocast (bfloat16 on the CPU, float16 on CUDA)


class Trial:
    """The calls one case needs, made on demand and memoized (see the module docstring)."""

    def __init__(self, impl, case, required_convention: str | None = None, contract=None, oracle=None):
        from dnspec.contract import lineages

        self.impl, self.case = impl, case
        self.required_convention = required_convention  # e.g. "four_nones" under --convention rtdetr
        self.contract = contract or lineages.get(None)  # the lineage contract (dnspec.contract.lineages)
        self.oracle = oracle  # what the differential checks compare with (None: the contract's reference)
        self.observations: dict[str, str] = {}  # what a check saw that is not a failure (the empty-batch convention)
        self.memo: dict[str, object] = {}  # work several checks share (one backward pass)
        self.args: dict[CallKey, tuple] = {}  # the arguments each call was given (after it returned)
        self._outputs: dict[CallKey, object] = {}
        self._reference: dict[CallKey, object] = {}
        self._draw: NoiseDraw | None = None
        self.calls = 0  # calls of the implementation made so far
        self.main_args = None  # the arguments the main call was given (after it returned)
        self.modified_draws: dict[CallKey, str] = {}  # injected calls that changed the draw they were given
        self.state_leaks: list[tuple[str, str]] = []  # (what, in words) each call left changed (process_state)
        self.rng: dict[CallKey, tuple] = {}  # the global RNG states (before, after) each call
        self._consecutive = None
        self._weight = None

    # --- the cases of the calls ---------------------------------------------------------

    def normal(self, key: CallKey) -> CallKey:
        """``key`` with the case's own device and dtype spelled as None (one call each)."""
        device = (
            None
            if key.device is None or str(torch.device(key.device)) == str(torch.device(self.case.device))
            else key.device
        )
        dtype = None if key.dtype in (None, self.case.dtype) else key.dtype
        return replace(key, device=device, dtype=dtype) if (device, dtype) != (key.device, key.dtype) else key

    def case_for(self, key: CallKey):
        key = self.normal(key)
        case = self.case
        if key.config == NOISE_FREE:
            case = case.with_config(label_noise_ratio=0.0, box_noise_scale=0.0)
        if key.device is not None or key.dtype is not None:
            case = case.to(device=key.device, dtype=key.dtype)
        return case

    @property
    def weight(self) -> torch.Tensor:
        """class_embed.weight of the case as built (before any call could change it)."""
        if self._weight is None:
            self._weight = self.case.class_embed().weight.detach()
        return self._weight

    def draw(self, case) -> NoiseDraw:
        """The trial's injected noise: drawn once in float64 on the CPU from the case's
        seed (torch.Generator, not the global RNG), cast to ``case``'s device and dtype."""
        if self._draw is None:
            from dnspec.contract.layout import CdnLayout

            layout = CdnLayout.for_targets(self.case.targets, self.case.num_denoising, self.case.num_queries)
            self._draw = draw_noise(
                self.case.batch_size,
                layout.num_dn_rows,
                self.case.num_classes,
                self.case.label_noise_ratio,
                self.case.box_noise_scale,
                device="cpu",
                box_dtype=torch.float64,
                generator=torch.Generator().manual_seed(self.case.seed),
            )
        return self._draw.to(case.device, box_dtype=case.dtype)

    # --- calls --------------------------------------------------------------------------

    def outputs(self, key: CallKey = CallKey()):
        """The implementation's outputs for ``key`` (raises the call's ImplementationError,
        the same one to every asker)."""
        key = self.normal(key)
        if key not in self._outputs:
            self._outputs[key] = self._call(self.impl, key, keep_args=key == CallKey())
            self.calls += 1
        return _unwrap(self._outputs[key])

    def reference(self, key: CallKey = CallKey()):
        """The reference's outputs for ``key``: the contract's reference (dnspec's own: it
        does not fail), or the trial's ``oracle`` (``--against``: it may raise)."""
        key = self.normal(key)
        if key not in self._reference:
            self._reference[key] = self._call(self.oracle or self.contract.reference, key)
        return _unwrap(self._reference[key])

    def lineage_reference(self, contract, key: CallKey = CallKey()):
        """The outputs of ``contract``'s reference for ``key`` (lineage recognition)."""
        memo = self.memo.setdefault("lineage_reference", {})
        key = self.normal(key)
        if (contract.name, key) not in memo:
            memo[contract.name, key] = self._call(contract.reference, key)
        return _unwrap(memo[contract.name, key])

    def _call(self, fn, key: CallKey, keep_args: bool = False, reseed: bool = True):
        case = self.case_for(key)
        args = case.args()
        kwargs = {"noise": self.draw(case)} if key.injected and _produces_output(case) else {}
        theirs = fn is self.impl
        if key.grad or key.autocast:
            fn = _Under(fn, key, torch.device(case.device).type)
        try:
            outputs = call_implementation(fn, case, args=args, reseed=reseed, **kwargs)
        except AssertionError as error:  # ImplementationError, ImplementationTimeout
            return _Raised(error)
        finally:
            if theirs:
                self.state_leaks.extend(calling.LAST_CALL.leaks)
                self.rng[key] = (calling.LAST_CALL.rng_before, calling.LAST_CALL.rng_after)
        if theirs and calling.LAST_CALL.container:  # a container other than RT-DETR's tuple: a convention
            from dnspec.calling.outputs import NO_DENOISING

            name = "no_denoising" if calling.LAST_CALL.container == NO_DENOISING else "output_container"
            self.observations[name] = calling.LAST_CALL.container
        self.args[key] = args
        if keep_args:
            self.main_args = args
        if kwargs:
            changed = _changed_fields(kwargs["noise"], self.draw(case))
            if changed:
                self.modified_draws[key] = changed
        return outputs

    def called_main(self) -> bool:
        return CallKey() in self._outputs

    def consecutive(self):
        """For ``fresh_noise``: the main call, then a second call on the same inputs that
        continues from the RNG state the main call left (no reseeding between): returns
        ``(main outputs, second outputs, rng (before, after) of the main call, of the
        second)``. Raises the calls' ImplementationError."""
        main = self.outputs()
        if self._consecutive is None:
            key = CallKey(repeat=-1)
            self._consecutive = (self._call(self.impl, key, reseed=False), self.rng.get(key))
            self.calls += 1
        second, rng = self._consecutive
        return main, _unwrap(second), self.rng.get(CallKey()), rng

    def from_other_state(self, seed: int):
        """For ``fresh_noise``: a call on the same inputs after ``torch.manual_seed(seed)``
        (a start state other than the main call's); returns the RNG (before, after)."""
        from dnspec.generation.cases import seed_torch

        key = CallKey(repeat=-2)
        seed_torch(seed)
        result = self._call(self.impl, key, reseed=False)
        self.calls += 1
        _unwrap(result)
        return self.rng.get(key)


class _Under:
    """``fn`` called with autograd on (dnspec.calling.call calls under torch.no_grad) and/or
    under torch.autocast; keeps ``fn``'s name (the hang record is keyed by it), and watches
    the process state around ``fn`` itself, inside those contexts (whose exit would hide a
    leak)."""

    watches_itself = True

    AUTOCAST_DTYPE = {"cpu": torch.bfloat16, "cuda": torch.float16}

    def __init__(self, fn, key: CallKey, device_type: str):
        self.fn, self.key, self.device_type = fn, key, device_type
        self.name = getattr(fn, "name", repr(fn))

    def __call__(self, *args, **kwargs):
        import contextlib

        with contextlib.ExitStack() as stack:
            if self.key.grad:
                stack.enter_context(torch.enable_grad())
            if self.key.autocast:
                stack.enter_context(
                    torch.autocast(self.device_type, dtype=self.AUTOCAST_DTYPE.get(self.device_type, torch.bfloat16))
                )
            return calling.watched(self.fn, *args, **kwargs)


@dataclass(frozen=True)
class _Raised:
    error: BaseException


def _unwrap(result):
    if isinstance(result, _Raised):
        raise result.error
    return result


def _changed_fields(given: NoiseDraw, pristine: NoiseDraw) -> str:
    """The fields of an injected draw that a call changed (in place), or ''."""
    changed = []
    for name in ("label_flip", "replacement_label", "box_sign", "box_magnitude"):
        a, b = getattr(given, name), getattr(pristine, name)
        if (a is None) != (b is None) or (a is not None and not torch.equal(a, b)):
            changed.append(name)
    return ", ".join(changed)


def _produces_output(case) -> bool:
    return case.num_denoising > 0 and max(case.counts, default=0) > 0
