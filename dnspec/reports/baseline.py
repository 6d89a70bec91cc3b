"""An earlier ``--report`` JSON file as accepted divergences (``--baseline``): every
divergence it lists is accepted for this run, with the reason it was accepted under there
(or "in the baseline FILE"). It reads a report record, so it sits in the reports layer,
above the orchestration's :mod:`dnspec.running.accept` whose ``Accepted`` entries it makes."""

from __future__ import annotations

import json

from dnspec.reports.records import VerifyReport
from dnspec.running.accept import Accepted


def from_baseline(path: str) -> list[Accepted]:
    """Every divergence of an earlier ``--report`` JSON file, accepted. Raises ValueError
    with one line when the file is not such a report."""
    try:
        with open(path) as handle:
            data = json.load(handle)
        report = VerifyReport.from_dict(data)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(
            f"--baseline {path}: not a dnspec --report JSON file ({type(error).__name__}: {error})"
        ) from None
    return [Accepted(d.id, d.accepted or f"in the baseline {path}", f"--baseline {path}") for d in report.divergences]
