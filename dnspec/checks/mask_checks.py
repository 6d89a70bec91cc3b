"""The attention-mask property: the mask a builder returns has the block structure of
the layout oracle (:mod:`dnspec.contract.layout`) in every slice, whatever layout it comes in
(:mod:`dnspec.contract.mask_layouts`). Split from :mod:`dnspec.checks.invariants` (which
keeps the structure check and the outputs' readers)."""

from __future__ import annotations

import torch

from dnspec.checks.invariants import layout_of, produced_outputs, raw_outputs_of, read_layout
from dnspec.checks.violations import PropertyViolation, raise_all
from dnspec.contract.mask_layouts import BLOCKED, RTDETR, TT, ReadMask, Unreadable, title

# --- 2. attention mask ----------------------------------------------------------------


def check_attention_mask(trial):
    """Every slice of the mask equals the layout oracle exactly, read in its own layout
    and value convention (:mod:`dnspec.contract.mask_layouts`: RT-DETR's ``[T, T]`` bool,
    per head ``[bs*heads, T, T]``, SDPA's ``[bs, 1|heads, T, T]``, bool of either polarity
    or additive float): object queries (rows >= N) see no dn row; a dn row sees every
    object query and the 2*max_gt rows of its own group only. Since every slice must
    equal the one oracle, slices that disagree with each other are wrong in some slice,
    and the message says in how many. Wrong entries are judged by kind (object queries
    seeing dn rows; dn groups seeing each other; entries blocked that must be open), each
    kind on its own, over all slices."""
    case = trial.case
    layout = layout_of(case)
    if not layout.produces_output:
        return
    produced_outputs(trial)  # a mask in no known layout is the structure property's failure
    raw = raw_outputs_of(trial)[2]
    expected = layout.attn_mask()
    read = read_layout(raw, case, layout, trial.memo)
    if isinstance(read, Unreadable):
        # a [T, T] mask in no value convention (a 0/1 float mask): the structure check names
        # its dtype; its truth values are judged here as RT-DETR's
        read = ReadMask(TT, BLOCKED, raw.detach().to(torch.bool)[None], 1)
    slices = read.slices.cpu()
    wrong = slices != expected[None]
    if not bool(wrong.any()):
        return
    n = layout.num_dn_rows
    rows = torch.arange(expected.shape[0])
    query_is_object = (rows >= n)[None, :, None]
    key_is_dn = (rows < n)[None, None, :]
    kinds = {
        "object_queries_see_dn": wrong & expected & query_is_object & key_is_dn,
        "groups_see_each_other": wrong & expected & ~query_is_object & key_is_dn,
        "over_masked": wrong & ~expected,
    }

    def role(r):
        return f"dn row {r} (group {r // (2 * layout.max_gt)})" if r < n else f"object query {r - n}"

    values = raw.detach().reshape(-1, *expected.shape).cpu()
    count = len(slices)
    failures = []
    for kind, cells in kinds.items():
        if not bool(cells.any()):
            continue
        k, i, j = (int(v) for v in cells.nonzero()[0])
        verb = "may not" if bool(expected[i, j]) else "must be allowed to"
        where = f"attn_mask[{i}, {j}]" if read.layout == TT else f"{read.slice_name(k)}: entry [{i}, {j}]"
        spread = "" if count == 1 else f", in {int(cells.flatten(1).any(1).sum())} of {count} slices"
        convention = "" if read.convention == RTDETR else f"; read as {title(read.convention)}"
        note = f"; {read.ambiguous}" if read.ambiguous else ""
        failures.append(
            PropertyViolation(
                f"{where} is {values[k, i, j].item()}: {role(i)} {verb} attend to {role(j)} "
                f"({int(cells.sum())} such entries of {int(wrong.sum())} wrong{spread}; groups are 2*max_gt = "
                f"{2 * layout.max_gt} rows wide{convention}{note})",
                f"attention_mask.{kind}",
            )
        )
    raise_all(failures)
