"""``--against THEIRS``: MINE judged with THEIRS as its oracle, after THEIRS itself.

THEIRS is verified first, in the same run and under the same contract; then MINE, with
THEIRS in place of the reference as the oracle of the differential properties (where
THEIRS raises, MINE is judged by the contract alone: :func:`dnspec.checks.invariants.oracle_outputs`).
:func:`compare` then matches MINE's divergences with THEIRS':

- one of MINE's that THEIRS shows too is the same bug (:func:`same_divergence`: the same
  check id; for a crash, the same exception type in the same regimes, since the raising
  line differs between two files): it is accepted for MINE through the accepted-divergence
  mechanism (:mod:`dnspec.running.accept`), an :class:`~dnspec.running.accept.Accepted`
  entry with MINE's divergence id, the reason "shared with THEIRS (its divergence N, ...)"
  and the source ``--against THEIRS``, so it is KNOWN everywhere a config-accepted one is
  (text, JSON, JUnit, HTML, markdown) and does not fail MINE;
- one of THEIRS' that MINE does not show is reported as a fix ("fixes THEIRS'
  divergence ...");
- the compatibility line is re-derived against THEIRS: bit-compatible under the same
  torch seed, else the same distributions when the two-sample tests of
  :func:`dnspec.checks.agreement.two_sample_failures` all hold, else departs.
"""

from __future__ import annotations

from dnspec.running.accept import Accepted
from dnspec.running.divergences import RAISES


def same_divergence(a, b) -> bool:
    """Two runs' divergences are the same bug: the same check id, or for a crash the same
    exception type in the same regimes (the raising line differs between two files)."""
    if a.signature.kind != b.signature.kind:
        return False
    if a.signature.kind == RAISES:
        return a.signature.key.split("@")[0] == b.signature.key.split("@")[0] and set(a.regime_sets) == set(
            b.regime_sets
        )
    return a.signature.key == b.signature.key


def shared(result, theirs_result, theirs, source: str = "") -> dict[int, Accepted]:
    """MINE's divergences that THEIRS shows too (:func:`same_divergence`), each as the
    Accepted entry that accepts it for MINE: ``{number: Accepted(MINE's id, 'shared with
    THEIRS (its divergence N, name)', source)}``; ``source`` defaults to ``--against THEIRS``."""
    source = source or f"--against {theirs.name}"
    out = {}
    for divergence in result.divergences:
        match = next((d for d in theirs_result.divergences if same_divergence(divergence, d)), None)
        if match is not None:
            reason = f"shared with {theirs.name} (its divergence {match.number}, {match.name})"
            out[divergence.number] = Accepted(divergence.id, reason, source)
    return out


def compare(result, theirs_result, mine, theirs, options, source: str = "") -> tuple[list[Accepted], list[str]]:
    """The Accepted entries for MINE's divergences that THEIRS shares (:func:`shared`; apply
    them with :func:`dnspec.running.accept.apply`), the THEIRS divergences MINE fixes, and
    ``result``'s compatibility set against THEIRS (shared divergences do not make it depart)."""
    from dnspec.checks.agreement import two_sample_failures
    from dnspec.checks.distributions import DEFAULT_SEED
    from dnspec.running.verdict import compatibility

    known = shared(result, theirs_result, theirs, source)
    fixed = [
        f"{d.number} ({d.name}, in {d.regimes_text})"
        for d in theirs_result.divergences
        if not any(same_divergence(mine_d, d) for mine_d in result.divergences)
    ]
    matches, compared = result.same_seed
    distributions = None
    new = [d for d in result.divergences if d.number not in known]
    if not new and not (compared and matches == compared):
        seed = DEFAULT_SEED if options.seed is None else options.seed
        distributions = two_sample_failures(mine, theirs, seed, options.device)
    level, line = compatibility(
        mine,
        result.outcomes,
        result.divergences,
        result.same_seed,
        contract=options.contract,
        against=theirs,
        known=frozenset(known),
        distributions=distributions,
    )
    if result.against_raised:
        line += f" (on {result.against_raised} cases where {theirs.name} raised, judged by the contract alone)"
    result.compatibility_level, result.compatibility = level, line
    return list(known.values()), fixed
