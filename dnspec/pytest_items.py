"""The items ``pytest --dnspec`` collects from the installed package, and how each is judged
(the hooks that add them are :mod:`dnspec.pytest_plugin`).

One item per property (variant) and input regime, ``dnspec::boxes[common]``, and one per
property checked on a fixed workload (statistical, advisory, ``call_history``),
``dnspec::label_flip_rate[fixed_workload]``. Their results come from the runner's public
pipeline (:func:`dnspec.running.runner.run`), never from calling the implementation here:
one run per SPEC and regime, shared by the items of that regime (and one per fixed
workload), its output captured as ``dnspec verify`` captures it.

**One bug, one failed item.** A divergence is owned by the first item, in the session's
order (the order every pytest-xdist worker has too, so each decides alike), whose run
shows a divergence with its signature (the same failed check, or the same exception at
the same line: one bug whatever regime it was met in, as ``dnspec verify`` groups them);
that item fails, and every other item that shows only divergences owned by others is
skipped, "not judged", with a reason naming the divergence ids and the owning items. A
result that depends on the call history, and a same-seed comparison it explains, is owned
by the ``call_history`` item when that item is collected and fails. Accepted divergences
(``accept``, ``--against``) are xfailed (strict) as before, and never own a bug.

**Each regime run once under pytest-xdist.** A regime's run serves all of its items, but
xdist's default distribution (``-n N``, ``--dist load``) deals items out one by one, so
every worker met every regime and made its run: N workers, N times the work.
:func:`regime_scope` names the unit an item belongs to (its SPEC's regime; a fixed
workload, which is a run of its own, alone), and :func:`regime_scheduling` (xdist's
``loadscope`` with those units; the plugin chooses it for ``--dist load``) gives each
unit to one worker, with nothing renamed (``--dist loadgroup`` would suffix every item's
id with its group). Other tests of the session are each a unit of their own, as under
``load``; another ``--dist`` the user chose is kept.

**As careful as verify.** Everything of the implementation's that an item shows (the
failure text, skip and xfail reasons) is cleaned by :func:`dnspec.calling.clean_text.clean`;
the captured output sections are cleaned by the plugin's report hook.
"""

from __future__ import annotations

import pytest

from dnspec.calling.clean_text import clean

FIXED_WORKLOAD = "fixed_workload"
HISTORY_PROPERTY = "call_history"
_IMPLEMENTATIONS: dict[str, object] = {}
_RUNS: dict = {}


def load(spec: str):
    """The Implementation a SPEC names, loaded once per process (a bad SPEC is a usage error)."""
    from dnspec.implementations.specs import SpecError, load_implementation

    if spec not in _IMPLEMENTATIONS:
        try:
            _IMPLEMENTATIONS[spec] = load_implementation(spec)
        except SpecError as error:
            raise pytest.UsageError(str(error)) from error
    return _IMPLEMENTATIONS[spec]


class DnspecCollector(pytest.Collector):
    """dnspec's items for one SPEC: one per property (variant) and regime, and one per
    property checked on a fixed workload."""

    spec: str = ""
    options = None
    accepted: list = []
    regimes = None
    against: str | None = None  # THEIRS (--against, or against in [tool.dnspec])

    def collect(self):
        from dnspec.checks.suite import GENERATED_KINDS, label
        from dnspec.generation.regimes import NAMES
        from dnspec.running import runner

        impl = load(self.spec)
        regimes = list(self.regimes or NAMES)
        unknown = [r for r in regimes if r not in NAMES]
        if unknown:
            raise pytest.UsageError(f"--regime {unknown[0]}: no such regime; regimes: {', '.join(NAMES)}")
        selected = runner.plan(impl, self.options)
        generated = [entry for entry in selected if entry[0].kind in GENERATED_KINDS]
        items = []
        for regime in regimes:  # regime by regime: one run per regime serves consecutive items
            for prop, variant, skip in generated:
                items.append(
                    DnspecItem.from_parent(
                        self, name=f"{label(prop, variant)}[{regime}]", entry=(prop, variant, skip), regime=regime
                    )
                )
        for prop, variant, skip in selected:
            if prop.kind not in GENERATED_KINDS:
                items.append(
                    DnspecItem.from_parent(
                        self, name=f"{label(prop, variant)}[{FIXED_WORKLOAD}]", entry=(prop, variant, skip), regime=None
                    )
                )
        for item in items:
            item.add_marker(pytest.mark.xdist_group(f"dnspec-{self.spec}-{item.regime or item.name}"))
        return items


class DnspecItem(pytest.Item):
    """One property (variant) in one regime (None: its fixed workload), judged from the
    shared run of that regime."""

    def __init__(self, *, entry, regime, **kwargs):
        super().__init__(**kwargs)
        self.entry, self.regime = entry, regime
        self.shared = []  # accepted entries for the divergences THEIRS shares (--against)

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::{self.name}"

    def shown(self):
        """(outcome, the divergences this item shows): what its run says of its property
        in its regime (no divergence when the property did not fail there)."""
        from dnspec.checks.suite import label

        prop, variant, _ = self.entry
        result, self.shared = _regime_run(self.parent, self.regime, self.entry)
        outcome = next(o for o in result.outcomes if o.label == label(prop, variant))
        failing = self.regime is None or outcome.regimes.get(self.regime) == "fail"
        if outcome.status == "fail" and "fail" not in outcome.regimes.values():
            failing = True  # every call of the property is in a regime it forces: it fails where it was run
        if outcome.status != "fail" or not failing:
            return outcome, []
        return outcome, [d for d in result.divergences if d.number in outcome.divergences]

    def runtest(self):
        prop, variant, skip = self.entry
        if skip:
            pytest.skip(clean(skip))
        outcome, shown = self.shown()
        if outcome.status == "skip":
            pytest.skip(clean(outcome.message))
        if outcome.status == "advisory":
            pytest.xfail(
                clean(f"advisory, not enforced for {self.parent.spec} (use --strict-advisories): {outcome.message}")
            )
        if not shown:
            self._expect_fixed(prop)
            return
        self._judge(shown)

    def _accepted(self, shown) -> dict:
        from dnspec.running.accept import match

        return {d.number: match(d.id, self.parent.accepted + self.shared) for d in shown}

    def _judge(self, shown):
        accepted = self._accepted(shown)
        if not all(accepted.values()):
            owners = {d.number: owner_of(self, d) for d in shown if not accepted[d.number]}
            elsewhere = {n: o for n, o in owners.items() if o is not self}
            if len(elsewhere) == len(owners):
                pytest.skip(
                    clean(
                        "not judged: "
                        + "; ".join(
                            f"divergence {d.id} is reported by {elsewhere[d.number].nodeid}"
                            for d in shown
                            if d.number in elsewhere
                        )
                    )
                )
            shown = [d for d in shown if d.number not in elsewhere]
        lines = []
        for d in shown:
            entry = accepted[d.number]
            head = f"KNOWN {d.id} (accepted: {entry.reason})" if entry else f"DIVERGENCE {d.id}"
            lines += [f"{head}: {d.title}", f"  properties: {', '.join(d.labels)}"]
            if d.example:
                lines.append(f"  minimal example ({d.example_label} in {d.example_regime}): {d.example}")
        message = "\n".join(lines)
        if all(accepted[d.number] for d in shown):
            reasons = "; ".join(
                dict.fromkeys(
                    f"{d.id}{'' if accepted[d.number].id == d.id else f' (accepted as {accepted[d.number].id})'}: "
                    f"{accepted[d.number].reason}"
                    for d in shown
                )
            )
            self.add_marker(pytest.mark.xfail(strict=True, reason=clean(f"known divergence {reasons}")))
        raise DnspecFailure(clean(message))

    def _expect_fixed(self, prop):
        """A passing item where an accepted check of this property, in this regime, was
        expected: strict xfail, so it fails as XPASS(strict) (remove it from accept)."""
        from dnspec.generation.regimes import COMMON
        from dnspec.running.accept import split_id

        for entry in self.parent.accepted:
            kind, regimes = split_id(entry.id)
            if kind.startswith(("raises:", "died:")) or kind == "hangs" or kind.split(".")[0] != prop.name:
                continue
            here = {COMMON} if not regimes else set(regimes)
            if self.regime in here or (self.regime is None and prop.kind != "contract"):
                self.add_marker(
                    pytest.mark.xfail(strict=True, reason=f"{entry.id} no longer happens; remove it from accept")
                )
                return

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, DnspecFailure):
            return clean(str(excinfo.value))
        return clean(str(super().repr_failure(excinfo)))


class DnspecFailure(AssertionError):
    """A property failed in an item's regime: the divergences it shows, one per line."""


def owner_of(item: DnspecItem, divergence) -> DnspecItem:
    """The item that reports ``divergence``, which ``item`` shows unaccepted (see the module
    docstring): when the SPEC's ``call_history`` item is in the session and fails, that
    item, for a result that depends on the call history and for the divergences it
    explains (:func:`dnspec.running.divergences.explained_by_history`); else the first item
    of the session, of the same SPEC, that shows a divergence with the same signature
    unaccepted (one bug whatever regime's run met it, as ``dnspec verify`` groups them):
    ``item`` itself when none before it does. Only called for a failing item; the runs of
    the items before it are made here when this process has not made them (pytest-xdist)."""
    from dnspec.running.divergences import HISTORY, explained_by_history

    siblings = [
        other
        for other in item.session.items
        if isinstance(other, DnspecItem) and other.parent is item.parent and not other.entry[2]
    ]
    if explained_by_history(divergence.signature):
        for other in siblings:
            if other.regime is None and other.entry[0].name == HISTORY_PROPERTY:
                if other is item or _shows_unaccepted(other, lambda d: d.signature.key == HISTORY):
                    return other
                break
    for other in siblings:
        if other is item:
            return item
        if _shows_unaccepted(other, lambda d: d.signature == divergence.signature):
            return other
    return item


def _shows_unaccepted(item: DnspecItem, wanted) -> bool:
    _, shown = item.shown()
    accepted = item._accepted(shown)
    return any(wanted(d) and not accepted[d.number] for d in shown)


def _regime_run(collector, regime, entry):
    """The run that judges an item, and the accepted entries for the divergences THEIRS
    shares (empty without --against): for a regime, every generated property of the SPEC
    in that regime (once per process, shared by that regime's items); for a fixed workload,
    its property (variant) alone. Through :func:`dnspec.running.runner.run`, as ``dnspec
    verify``, with what the implementation prints captured (:mod:`dnspec.calling.output_capture`)
    and said, cleaned, in one line; with ``against``, THEIRS' run of the same properties
    first, then MINE's with THEIRS as the oracle, its divergences matched with THEIRS' by
    :func:`dnspec.running.against.shared` (the items need no compatibility line, so no
    two-sample tests run for one)."""
    import dataclasses

    from dnspec.calling.output_capture import BoundedOutput, capturing_implementation
    from dnspec.running import against as against_run
    from dnspec.running import runner

    key = (collector.spec, collector.against, regime if regime is not None else entry[0].name)
    key += (str(entry[1]) if regime is None else "",)
    if key not in _RUNS:
        buffer = BoundedOutput()
        impl = capturing_implementation(load(collector.spec), buffer)
        regimes = [] if regime is None else [regime]
        options, shared = collector.options, []
        if collector.against:
            theirs = capturing_implementation(load(collector.against), buffer)
            theirs_selected = _selected(theirs, options, regime, entry)
            theirs_result = runner.run(theirs, options, regimes=regimes, selected=theirs_selected, capture=buffer)
            options = dataclasses.replace(options, against=theirs)
        selected = [entry] if regime is None else _selected(impl, collector.options, regime, entry)
        result = runner.run(impl, options, regimes=regimes, selected=selected, capture=buffer)
        if collector.against:
            source = f"--against {collector.against}"
            shared = list(against_run.shared(result, theirs_result, theirs, source).values())
        if buffer.total:
            where = f"regime {regime}" if regime is not None else f"the fixed workload of {entry[0].name}"
            tail = buffer.tail().strip().splitlines()[-1:] or [""]
            print(
                clean(f"dnspec: {impl.name} printed {buffer.total} characters in {where} (captured); last line: ")
                + clean(tail[0])[:200]
            )
        _RUNS[key] = result, shared
    return _RUNS[key]


def _selected(impl, options, regime, entry):
    """What a regime's run checks: every generated property of ``impl``; for a fixed
    workload (``regime`` None), ``entry``'s property (variant) alone."""
    from dnspec.checks.suite import GENERATED_KINDS
    from dnspec.running import runner

    if regime is None:
        return [e for e in runner.plan(impl, options) if e[0] is entry[0] and str(e[1]) == str(entry[1])] or [entry]
    return [e for e in runner.plan(impl, options) if e[0].kind in GENERATED_KINDS]


def regime_scope(nodeid: str) -> str:
    """The unit of work a node id belongs to under pytest-xdist: ``COLLECTOR::[REGIME]``
    for an item of dnspec's in a regime (``dnspec::boxes[common]`` and
    ``dnspec[SPEC]::dtype_agreement[bfloat16][common]`` -> ``dnspec::[common]`` and
    ``dnspec[SPEC]::[common]``: the items one regime's run serves); the node id itself for
    anything else, a fixed-workload item included (its run is its own)."""
    collector, _, name = nodeid.rpartition("::")
    if not (collector == "dnspec" or (collector.startswith("dnspec[") and collector.endswith("]"))):
        return nodeid
    regime = name[name.rfind("[") + 1 : -1] if name.endswith("]") and "[" in name else ""
    if not regime or regime == FIXED_WORKLOAD:
        return nodeid
    return f"{collector}::[{regime}]"


def regime_scheduling(config, log):
    """xdist's ``loadscope`` scheduler with :func:`regime_scope`'s units (xdist imported here:
    only a session with xdist calls it)."""
    from xdist.scheduler import LoadScopeScheduling

    class RegimeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return regime_scope(nodeid)

    return RegimeScheduling(config, log)
