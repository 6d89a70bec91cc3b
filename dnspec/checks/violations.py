"""How a check fails: :class:`PropertyViolation` names the check that failed (its id
groups failures into divergences) and the call that showed it; :class:`Failures` carries
several independent failures of one property on one case (the box check judges each
kind of row on its own); :func:`judge_separately` runs parts of a check so that one
failing part does not stop the others.
"""

from __future__ import annotations


class PropertyViolation(AssertionError):
    """The implementation's output breaks an invariant: ``check`` names which one, and
    ``case`` is the call that showed it (None: the check's own case)."""

    def __init__(self, message: str, check: str = "", case=None):
        super().__init__(message)
        self.check, self.case = check, case


class Failures(AssertionError):
    """Several independent failures of one property on one case (each a
    PropertyViolation or an ImplementationError)."""

    def __init__(self, failures: list):
        super().__init__("; ".join(str(f) for f in failures))
        self.failures = list(failures)


def fail(message: str, check: str, case=None):
    raise PropertyViolation(message, check, case)


def each_failure(error: BaseException) -> list:
    """The failures an AssertionError stands for (a Failures group flattened)."""
    if isinstance(error, Failures):
        return [leaf for f in error.failures for leaf in each_failure(f)]
    return [error]


def raise_all(failures: list) -> None:
    """Raise nothing, the one failure, or Failures when there are several."""
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise Failures(failures)


def judge_separately(*parts) -> None:
    """Run each part (a zero-argument callable); raise what fails (:func:`raise_all`).
    A part that fails does not stop the others."""
    failures = []
    for part in parts:
        try:
            part()
        except AssertionError as failure:
            failures.extend(each_failure(failure))
    raise_all(failures)
