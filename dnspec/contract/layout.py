"""Closed-form oracles: what a CDN group must look like, derived from the box counts alone.

Written independently of :mod:`dnspec.contract.reference` (no loop over groups, no tiling): every
answer is arithmetic on row numbers. With m = max boxes per image, G groups and
N = 2*m*G dn rows, dn row r belongs to

    group     g(r) = r // (2m)
    negative  (r mod 2m) >= m       (rows [(2k+1)m, (2k+2)m) of group k are negatives)
    gt slot   s(r) = r mod m        (the s-th box of the image, repeated in every half-group)
    real      s(r) < n_i            (else a padding row of image i)

and the attention mask (True = may not attend) over N dn rows then Q object queries is
``mask[i, j] = j < N and (i >= N or g(i) != g(j))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def num_groups(num_denoising: int, max_gt: int) -> int:
    """G = max(1, num_denoising // max_gt): as many groups as fit, but at least one."""
    return max(1, num_denoising // max_gt)


@dataclass(frozen=True)
class CdnLayout:
    """The shape and row roles of a CDN group for images with ``counts`` boxes each."""

    counts: tuple[int, ...]
    num_denoising: int
    num_queries: int

    @classmethod
    def for_targets(cls, targets, num_denoising: int, num_queries: int) -> CdnLayout:
        return cls(tuple(int(len(t["labels"])) for t in targets), num_denoising, num_queries)

    @property
    def produces_output(self) -> bool:
        """False exactly when the builder must return (None, None, None, None)."""
        return self.num_denoising > 0 and max(self.counts, default=0) > 0

    @property
    def batch_size(self) -> int:
        return len(self.counts)

    @property
    def max_gt(self) -> int:
        return max(self.counts, default=0)

    @property
    def num_groups(self) -> int:
        return num_groups(self.num_denoising, self.max_gt)

    @property
    def num_dn_rows(self) -> int:
        """N = 2 * m * G."""
        return 2 * self.max_gt * self.num_groups

    @property
    def dn_num_split(self) -> list[int]:
        return [self.num_dn_rows, self.num_queries]

    def _rows(self, device=None) -> torch.Tensor:
        return torch.arange(self.num_dn_rows, device=device)

    def row_group(self, device=None) -> torch.Tensor:
        """int64 [N]: the group of each dn row."""
        return self._rows(device) // (2 * self.max_gt)

    def row_is_negative(self, device=None) -> torch.Tensor:
        """bool [N]: True on the negative half of each group."""
        return self._rows(device) % (2 * self.max_gt) >= self.max_gt

    def row_slot(self, device=None) -> torch.Tensor:
        """int64 [N]: which ground-truth box of the image the row copies."""
        return self._rows(device) % self.max_gt

    def real_rows(self, device=None) -> torch.Tensor:
        """bool [bs, N]: True where row r of image i copies a real box (slot < n_i)."""
        counts = torch.tensor(self.counts, dtype=torch.int64, device=device)
        return self.row_slot(device)[None, :] < counts[:, None]

    def positive_rows(self, device=None) -> torch.Tensor:
        """bool [bs, N]: real rows on the positive half of their group."""
        return self.real_rows(device) & ~self.row_is_negative(device)[None, :]

    def negative_rows(self, device=None) -> torch.Tensor:
        """bool [bs, N]: real rows on the negative half of their group."""
        return self.real_rows(device) & self.row_is_negative(device)[None, :]

    def attn_mask(self, device=None) -> torch.Tensor:
        """bool [N+Q, N+Q]: True where query i may not attend to key j.

        Object queries (i >= N) see no dn row; a dn row sees its own group and every
        object query. Built from group ids: object queries get group -1.
        """
        size = self.num_dn_rows + self.num_queries
        group = torch.full((size,), -1, dtype=torch.int64, device=device)
        group[: self.num_dn_rows] = self.row_group(device)
        key_is_dn = group >= 0
        return key_is_dn[None, :] & (group[:, None] != group[None, :])

    def positive_idx(self, device=None) -> tuple[torch.Tensor, ...]:
        """Per image, int64 ascending: row g*2m + s for every group g and real slot s < n_i."""
        starts = torch.arange(self.num_groups, dtype=torch.int64, device=device)[:, None] * (2 * self.max_gt)
        return tuple(
            (starts + torch.arange(n, dtype=torch.int64, device=device)[None, :]).flatten() for n in self.counts
        )
