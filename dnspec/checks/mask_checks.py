"""The attention-mask property: the mask a builder returns has the block structure of
the layout oracle (:mod:`dnspec.contract.layout`). Split from :mod:`dnspec.checks.invariants`
(which keeps the structure check and the outputs' readers)."""

from __future__ import annotations

import torch

from dnspec.checks.invariants import layout_of, produced_outputs
from dnspec.checks.violations import PropertyViolation, raise_all

# --- 2. attention mask ----------------------------------------------------------------


def check_attention_mask(trial):
    """The mask equals the layout oracle exactly: object queries (rows >= N) see no dn
    row; a dn row sees every object query and the 2*max_gt rows of its own group only.
    Wrong entries are judged by kind (object queries seeing dn rows; dn groups seeing
    each other; entries blocked that must be open), each kind on its own."""
    layout = layout_of(trial.case)
    if not layout.produces_output:
        return
    attn_mask = produced_outputs(trial)[2]
    expected = layout.attn_mask()
    got = attn_mask.cpu()  # of the expected shape (produced_outputs checks it)
    wrong = got.to(torch.bool) != expected
    if not bool(wrong.any()):
        return
    n = layout.num_dn_rows
    rows = torch.arange(expected.shape[0])
    query_is_object = (rows >= n)[:, None]
    key_is_dn = (rows < n)[None, :]
    kinds = {
        "object_queries_see_dn": wrong & expected & query_is_object & key_is_dn,
        "groups_see_each_other": wrong & expected & ~query_is_object & key_is_dn,
        "over_masked": wrong & ~expected,
    }

    def role(r):
        return f"dn row {r} (group {r // (2 * layout.max_gt)})" if r < n else f"object query {r - n}"

    failures = []
    for kind, cells in kinds.items():
        if not bool(cells.any()):
            continue
        i, j = (int(v) for v in cells.nonzero()[0])
        verb = "may not" if bool(expected[i, j]) else "must be allowed to"
        failures.append(
            PropertyViolation(
                f"attn_mask[{i}, {j}] is {bool(got[i, j])}: {role(i)} {verb} attend to {role(j)} "
                f"({int(cells.sum())} such entries of {int(wrong.sum())} wrong; groups are 2*max_gt = {2 * layout.max_gt} rows wide)",
                f"attention_mask.{kind}",
            )
        )
    raise_all(failures)
