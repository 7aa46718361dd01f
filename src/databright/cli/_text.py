"""Text from other people, made harmless for a terminal.

Dataset names, descriptions, labels, comments and file names come from the
chain, blobs and the index, that is from anyone. Printed raw they could style
the terminal, hide text or plant links (rich markup such as ``[link=...]``, or
escape sequences written as raw control characters). ``plain`` shows control
characters as visible escapes; ``safe`` also escapes rich markup, for text that
goes through a rich console.
"""

from __future__ import annotations

import re

from rich.markup import escape

__all__ = ["plain", "safe"]

# C0 controls except tab and newline, DEL, C1 controls (0x9b is a one-byte CSI),
# and the bidirectional overrides that can reorder what a line appears to say.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object) -> str:
    """``value`` as text with every control character shown as an escape."""
    return _CONTROL.sub(_visible, str(value))


def safe(value: object) -> str:
    """``value`` for a rich console: controls shown as escapes, markup shown as typed."""
    return escape(plain(value))
