"""The implementation's text (exception messages, what it printed, its raising line) made
safe to show: on a terminal, in the HTML page, in every report, and in a CI log.

:func:`clean` removes terminal escape sequences (CSI ``ESC [ ... m``, OSC ``ESC ] ... BEL``,
two-character ``ESC x``) and every control character but tab and newline (NUL, BEL,
backspace, DEL, the C1 range, and a carriage return, which becomes a newline: it could
overwrite a line already printed), and the Unicode bidirectional overrides that reorder
what a reader sees; and it defuses GitHub Actions workflow commands: a line that starts
(after blanks) with ``::`` gets ``: :`` instead, so no line of the implementation's text
can act as ``::error``, ``::add-mask`` or ``::stop-commands`` wherever dnspec prints it
or writes it into a report a CI step prints. Text that needs none of this is returned as
it is (the common case costs one regular-expression search).
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -~]?"  # any other escape, and a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the 8-bit CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WORKFLOW_COMMAND = re.compile(r"(?m)^([ \t]*)::")
_NEEDS_WORK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|(?m:^[ \t]*::)")


def clean(text) -> str:
    """``text`` without escape sequences and control characters (tab and newline kept, a
    carriage return made a newline) and with no line starting with ``::`` (see the module
    docstring)."""
    text = text if isinstance(text, str) else str(text)
    if not _NEEDS_WORK.search(text):
        return text
    text = _ESCAPES.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", text)
    return _WORKFLOW_COMMAND.sub(r"\1: :", text)
