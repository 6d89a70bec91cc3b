"""Lineage contracts: what "conforms" means for RT-DETR and for the forks that changed
its builder on purpose.

dnspec judges a builder by RT-DETR's contract by default. Some lineages deliberately
differ from it in two places, and a fork that keeps its lineage's behaviour wants to be
judged by that lineage. Each :class:`Contract` is a set of switches on dnspec's own
reference (:mod:`dnspec.contract.reference`) and checks, written from the lineages'
documented behaviour, never from their code:

``rtdetr``     (the default) RT-DETR v1: a crossed negative collapses to side ~1e-5; four
               Nones for an all-empty batch.
``rtdetrv2``   RT-DETRv2 since its PR #684: a dummy group (one masked padding pair per
               image) for an all-empty batch; boxes as RT-DETR.
``dfine``      D-FINE: a crossed negative keeps its side's magnitude (|w|, |h|: the
               cxcywh box's negative side negated before the logit); meta data only,
               ``(None, None, None, dn_meta)``, for an all-empty batch.
``deim``       DEIM, DEIMv2, RT-DETRv4: crossed negatives keep |w| and |h| as D-FINE's;
               four Nones for an all-empty batch, as RT-DETR's.

A contract drives every property that depends on it: the crossed-row rule of the box
check (:func:`dnspec.checks.box_checks.check_boxes`), the empty-batch convention the
structure check requires, the oracle of the differential properties
(``noiseless_matches_reference``, the same-seed comparison, ``injected_noise_matches_reference``:
:meth:`Contract.reference`), and which advisories still apply (one a contract already
requires is skipped, naming the check that holds it). A lineage's upstream bugs are
never part of its contract: the crash at ``box_noise_scale == 0`` (D-FINE and DEIM assign
their box output only under ``if box_noise_scale > 0``) stays a divergence under every
contract.

ultralytics' ``get_cdn_group`` is not a contract here: its padding queries are zeros
rather than the padding class, and when the boxes outnumber num_denoising it subsamples
them, which changes the layout (shapes, groups, mask, positive indices) every structural
check reads, not a switch on the reference (docs/lineages.md says more).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT = "rtdetr"
# the empty-batch conventions of dnspec.contract.conventions, by name: this module is read
# by `dnspec verify --help`, which must not import torch (conventions does)
FOUR_NONES, DUMMY_GROUP, META_ONLY = "four_nones", "dummy_group", "meta_only"


@dataclass(frozen=True)
class Contract:
    """One lineage's contract: switches on the reference and the checks.

    ``crossed_keep_side``: a crossed negative keeps |w| (|h|) instead of collapsing;
    ``empty_batch``: the convention (:mod:`dnspec.contract.conventions`) an all-empty
    batch must follow when this contract is asked for; ``in_contract``: advisories this
    contract already requires (advisory name -> the check that holds it), which are
    therefore not reported as advisories; ``differs``: one line on how it differs from
    ``rtdetr``; ``builder``: how a verdict names the lineage; ``follows``: who follows it."""

    name: str
    builder: str
    crossed_keep_side: bool
    empty_batch: str
    differs: str
    follows: str
    in_contract: dict = field(default_factory=dict)

    @property
    def departure(self) -> str:
        """How a builder of this lineage departs from RT-DETR, in a few words (for a
        compatibility line): '' for rtdetr."""
        from dnspec.contract import conventions

        parts = []
        if self.crossed_keep_side:
            parts.append("crossed negatives keep |w|")
        if self.empty_batch != conventions.FOUR_NONES:
            parts.append(f"an all-empty batch gets {conventions.SHORT[self.empty_batch]}")
        return "; ".join(parts)

    def reference(
        self,
        targets,
        num_classes: int,
        num_queries: int,
        class_embed,
        num_denoising: int = 100,
        label_noise_ratio: float = 0.5,
        box_noise_scale: float = 1.0,
        **kwargs,
    ):
        """This lineage's builder: dnspec's reference with the contract's switches (same
        draws in the same order, so the same torch seed gives the lineage's numbers)."""
        from dnspec.contract import conventions
        from dnspec.contract.reference import get_contrastive_denoising_training_group

        outputs = get_contrastive_denoising_training_group(
            targets,
            num_classes,
            num_queries,
            class_embed,
            num_denoising,
            label_noise_ratio,
            box_noise_scale,
            crossed_keep_side=self.crossed_keep_side,
            **kwargs,
        )
        if num_denoising > 0 and all(len(t["labels"]) == 0 for t in targets) and len(targets):
            return conventions.answer(self.empty_batch, targets, num_classes, num_queries, class_embed, box_noise_scale)
        return outputs


_CROSSED = "crossed negatives keep |w| and |h| (the cxcywh box's negative side is negated before the logit)"
_COLLAPSE_IN_CONTRACT = "the contract requires it: crossed rows are judged by boxes.crossed"

CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (
        Contract(
            "rtdetr",
            "RT-DETR",
            crossed_keep_side=False,
            empty_batch=FOUR_NONES,
            differs="the default: RT-DETR v1's builder (crossed negatives collapse to side 1e-5; four Nones for an "
            "all-empty batch)",
            follows="RT-DETR v1 and the ports that keep it (transformers')",
        ),
        Contract(
            "rtdetrv2",
            "RT-DETRv2's builder",
            crossed_keep_side=False,
            empty_batch=DUMMY_GROUP,
            differs="an all-empty batch gets a dummy group (one masked padding pair per image, RT-DETRv2 PR #684)",
            follows="RT-DETRv2 since its PR #684",
            in_contract={"empty_batch_in_graph": "the contract requires the dummy group: judged by structure"},
        ),
        Contract(
            "dfine",
            "D-FINE's builder",
            crossed_keep_side=True,
            empty_batch=META_ONLY,
            differs=f"{_CROSSED}; an all-empty batch gets (None, None, None, dn_meta) with no groups",
            follows="D-FINE since its DDP fix",
            in_contract={"no_collapsed_boxes": _COLLAPSE_IN_CONTRACT},
        ),
        Contract(
            "deim",
            "DEIM's builder",
            crossed_keep_side=True,
            empty_batch=FOUR_NONES,
            differs=f"{_CROSSED}; four Nones for an all-empty batch, as RT-DETR",
            follows="DEIM, DEIMv2, RT-DETRv4",
            in_contract={"no_collapsed_boxes": _COLLAPSE_IN_CONTRACT},
        ),
    )
}

NAMES = tuple(CONTRACTS)


class UnknownContract(ValueError):
    """A contract name dnspec does not know."""


def split_spec(spec: str) -> tuple[str, str | None]:
    """``'SPEC@dfine'`` -> ``('SPEC', 'dfine')`` (``dnspec matrix``'s contract per SPEC); a
    SPEC without a known contract name after its last ``@`` is returned whole."""
    head, sep, tail = spec.rpartition("@")
    return (head, tail) if sep and head and tail in CONTRACTS else (spec, None)


def get(name: str | None) -> Contract:
    """The contract called ``name`` (None: the default, ``rtdetr``)."""
    if name is None:
        return CONTRACTS[DEFAULT]
    if name not in CONTRACTS:
        raise UnknownContract(f"contract {name!r}: no such contract; known: {', '.join(NAMES)}")
    return CONTRACTS[name]
