"""What the implementation under test prints: captured in a bounded buffer, counted, and
never shown on the terminal (a builder that prints megabytes per call must not drown the
verdict). The verify command captures every call and the import of the SPEC's module;
worker processes send their capture back (:meth:`BoundedOutput.snapshot`) and the run
absorbs it.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections import deque
from dataclasses import replace

from dnspec.calling.clean_text import clean


class BoundedOutput(io.TextIOBase):
    """A text stream that keeps the first ``head`` and last ``tail`` characters written
    to it and counts the rest (what the implementation prints goes here)."""

    def __init__(self, head: int = 4000, tail: int = 2000):
        super().__init__()
        self.head_limit, self.total = head, 0
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len, self.tail_limit = 0, tail
        self.buffer = _BoundedBytes(self)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"

    def write(self, text) -> int:
        if not isinstance(text, str):
            text = str(text)
        self.total += len(text)
        if self._head_len < self.head_limit:
            piece = text[: self.head_limit - self._head_len]
            self._head.append(piece)
            self._head_len += len(piece)
        piece = text[-self.tail_limit :]
        self._tail.append(piece)
        self._tail_len += len(piece)
        while self._tail and self._tail_len - len(self._tail[0]) >= self.tail_limit:
            self._tail_len -= len(self._tail.popleft())
        return len(text)

    def head(self) -> str:
        """The first characters written, cleaned for showing (dnspec.calling.clean_text)."""
        return clean("".join(self._head))

    def tail(self) -> str:
        """The last characters written, cleaned for showing."""
        return clean("".join(self._tail)[-self.tail_limit :])

    def reset(self) -> None:
        """Empty (a worker process starts its task's capture afresh)."""
        self.total, self._head, self._head_len = 0, [], 0
        self._tail, self._tail_len = deque(), 0

    def snapshot(self) -> tuple[int, str, str]:
        """(characters written, head, tail): what a worker sends back."""
        return self.total, "".join(self._head), "".join(self._tail)[-self.tail_limit :]

    def absorb(self, snapshot: tuple[int, str, str]) -> None:
        """Add what another buffer captured (a worker's snapshot): its head continues this
        buffer's head while there is room, its tail becomes the newest tail, and the
        characters in between are counted."""
        total, head, tail = snapshot
        before = self.total
        self.write(head)
        if total > len(head):  # the end of what it captured that its head does not hold
            self.write(tail[len(head) - total :] if total - len(head) < len(tail) else tail)
        self.total = before + total


class _BoundedBytes(io.RawIOBase):
    """``sys.stdout.buffer`` for code that writes bytes."""

    def __init__(self, text: BoundedOutput):
        super().__init__()
        self.text = text

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


@contextlib.contextmanager
def captured(buffer: BoundedOutput):
    """Send Python-level stdout and stderr (print, sys.std*.write, warnings) to ``buffer``."""
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield


class _CapturedCall:
    """``impl(*args, **kwargs)`` with its output sent to ``buffer``: an object, not a
    closure, so that it pickles for a worker that is not forked (``impl`` travels as
    :mod:`dnspec.calling.start_methods` sends implementations, ``buffer`` with it)."""

    def __init__(self, impl, buffer: BoundedOutput):
        self.impl, self.buffer = impl, buffer
        functools.update_wrapper(self, impl.fn)

    def __call__(self, *args, **kwargs):
        with captured(self.buffer):
            return self.impl.fn(*args, **kwargs)

    def __reduce__(self):
        return _CapturedCall, (self.impl, self.buffer)


def capturing_implementation(impl, buffer: BoundedOutput):
    """The same Implementation, with its output captured during every call."""
    return replace(impl, fn=_CapturedCall(impl, buffer))
