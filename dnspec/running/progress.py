"""A progress bar for the CLI: rich on a terminal, nothing at all otherwise (CI logs,
pipes and report files stay clean)."""

from __future__ import annotations


class ProgressBar:
    """``with ProgressBar(console, total, "starting") as bar: bar.describe(...); bar.advance()``.

    Shown on ``console`` (a rich Console, usually on stderr) only when it is a terminal;
    ``spinner`` adds a spinner, ``eta`` an estimate of the time remaining."""

    def __init__(self, console, total: int, description: str, *, spinner: bool = False, eta: bool = False):
        self.progress = None
        if not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        if spinner:
            columns.insert(0, SpinnerColumn())
        if eta:
            columns.append(TimeRemainingColumn())
        self.progress = Progress(
            *columns, console=console, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        self.task = self.progress.add_task(description, total=total)

    @property
    def shown(self) -> bool:
        return self.progress is not None

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()
        return False

    def describe(self, description: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=description)

    def advance(self, n: int = 1) -> None:
        if self.progress:
            self.progress.advance(self.task, n)
