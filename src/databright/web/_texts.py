"""Text items as the pages show them: one escaped, truncated line per item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from databright.errors import DataBrightError
from databright.storage import text_preview

__all__ = ["item_texts"]

#: Characters of a text the item browser shows; the full text is the blob's link.
PREVIEW_CHARS = 120


def item_texts(store: Any, items: Sequence[Any], kind: str) -> dict[str, str]:
    """``{cid: preview}`` of a page of a text dataset's items (empty for other kinds)."""
    if kind != "text":
        return {}
    texts = {}
    for item in items:
        try:
            texts[item.cid] = text_preview(store.get(item.cid), PREVIEW_CHARS)
        except DataBrightError:  # a blob this store does not hold, or one failing its digest
            texts[item.cid] = "(not in this blob store)"
    return texts
