"""The one sanitiser: text from the target or a file reaches the terminal inert.

A dump's comment, a module or symbol name, a string read from memory, a tag description from a
`pooltag.txt`, a lab's text, a file name echoed back: any of them may hold an escape sequence
that, printed raw, recolours the terminal, retitles the window, moves the cursor over earlier
output or answers a terminal query as typed input.

Where: in `Session.write`, the single output path (screen, log and pager alike), and in the few
lines `kdsim` prints on standard error.  Sanitising every C0/C1 control there, rather than
wrapping each untrusted value where a command formats it, is the robust choice because the
debugger's own text never needs a control character besides the line end and the tab: `db`'s
ASCII column already shows unprintable bytes as `.`, JSON output escapes them, and colour is
added after sanitising (`colorize` in `Session.write`), as is `.cls`'s screen clear, which does
not go through `write`.  A new command that prints a target string is safe without knowing it.

How: as kd shows a byte it cannot print, escaped: `\\x1b` for C0 controls (all but `\\n` and
`\\t`, so `\\r` cannot return over a line either), DEL and C1 controls (U+009B is CSI to many
terminals); `\\u202e` for the bidirectional overrides and isolates, which reorder a displayed
line; and an undecodable byte kept by the `surrogateescape` error handler (a command-line
argument, a file name) as the byte it stands for, `\\xff`, so every shown text can be encoded.
Sanitising is idempotent: an escape is plain printable text.
"""
from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:            # surrogateescape: the undecodable byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def sanitize(text: str) -> str:
    """`text` with every control character escaped; line ends and tabs are kept."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)
