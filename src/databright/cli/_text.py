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
from collections.abc import Sequence
from typing import Any

from rich.markup import escape

__all__ = ["PREVIEW_ITEMS", "plain", "safe", "text_previews"]

#: How many items ``dataset show`` and ``proposal show`` preview for a text dataset.
PREVIEW_ITEMS = 10

# C0 controls except tab and newline, DEL, C1 controls (0x9b is a one-byte CSI),
# and the bidirectional overrides that can reorder what a line appears to say.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object) -> str:
    """``value`` as text with every control character shown as an escape."""
    return _CONTROL.sub(_visible, str(value))


def text_previews(store: Any, items: Sequence[Any], count: int = PREVIEW_ITEMS) -> list[dict[str, Any]]:
    """The first ``count`` index ``items`` of a text dataset: position, label and a one-line preview."""
    from databright.errors import DataBrightError
    from databright.storage import text_preview

    rows = []
    for item in items[:count]:
        try:
            preview = text_preview(store.get(item.cid))
        except DataBrightError:  # a blob kept in another store, or failing its digest
            preview = "(not readable in this blob store)"
        rows.append({"position": item.position, "cid": item.cid, "label": item.label, "text": preview})
    return rows


def safe(value: object) -> str:
    """``value`` for a rich console: controls shown as escapes, markup shown as typed."""
    return escape(plain(value))
