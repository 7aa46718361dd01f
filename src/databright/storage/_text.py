"""Text items: how a string, or a source/target pair, is stored as a blob.

A text dataset (kind ``text``) holds one string per item, or one pair of
strings (parallel text: a sentence and its translation, as OpenNMT trains on).
Both are stored as UTF-8 with nothing added, so a text's CID is the CID of its
bytes and the same text always gets the same CID:

- a single text is its UTF-8 bytes;
- a pair is ``source NUL target``: the two UTF-8 strings joined by one zero
  byte. Text may not contain NUL, so the separator is unambiguous and a blob
  says by itself whether it is a pair.

Items come from anyone, so :func:`encode_text` refuses what a reader could
mistake: invalid UTF-8, NUL bytes, empty text and text over
:data:`MAX_TEXT_BYTES`. Line breaks are allowed inside a JSONL or CSV text;
the line-based formats cannot hold them, and exports escape nothing (OpenNMT
export refuses such an item rather than misalign its files).
"""

from __future__ import annotations

import re

from ._errors import ManifestError

__all__ = ["MAX_TEXT_BYTES", "TextItem", "decode_text", "encode_pair", "encode_text", "text_preview"]

#: Largest text (one side of a pair) accepted, in UTF-8 bytes: a long document, not a book.
MAX_TEXT_BYTES = 1 << 16

_SEPARATOR = b"\0"

#: A decoded item: ``(text, None)`` for a single text, ``(source, target)`` for a pair.
TextItem = tuple[str, str | None]


def encode_text(text: str, where: str) -> bytes:
    """The blob of a single text (its UTF-8 bytes), or ManifestError saying what is wrong with it at ``where``."""
    if not text.strip():
        raise ManifestError(f"{where}: empty text")
    if "\0" in text:
        raise ManifestError(f"{where}: the text holds a NUL character")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800"
        raise ManifestError(f"{where}: the text is not valid Unicode") from None
    if len(data) > MAX_TEXT_BYTES:
        raise ManifestError(f"{where}: the text is {len(data)} bytes, more than {MAX_TEXT_BYTES}")
    return data


def encode_pair(source: str, target: str, where: str) -> bytes:
    """The blob of a source/target pair."""
    return encode_text(source, f"{where} (source)") + _SEPARATOR + encode_text(target, f"{where} (target)")


def decode_text(blob: bytes, where: str = "item") -> TextItem:
    """A text blob back as ``(text, None)`` or ``(source, target)``; ManifestError if it is not one."""
    parts = bytes(blob).split(_SEPARATOR)
    if len(parts) > 2:
        raise ManifestError(f"{where}: not a text item (more than one NUL byte)")
    try:
        texts = [part.decode("utf-8") for part in parts]
    except UnicodeDecodeError:
        raise ManifestError(f"{where}: not a text item (invalid UTF-8)") from None
    for text in texts:
        if not text.strip() or len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise ManifestError(f"{where}: not a text item (empty or over {MAX_TEXT_BYTES} bytes)")
    return (texts[0], texts[1]) if len(texts) == 2 else (texts[0], None)


# Every C0 control (line breaks and tabs too), DEL, C1 controls and the bidirectional
# overrides that could make a preview appear to say something else.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def text_preview(blob: bytes, limit: int = 60) -> str:
    """A text item (or pair, ``source → target``) as one line of at most ``limit``
    characters, every control character shown as an escape (``\\n``, ``\\x1b``)."""
    try:
        source, target = decode_text(blob)
    except ManifestError:
        return "(not a text item)"
    text = _CONTROL.sub(_visible, source if target is None else f"{source} → {target}")
    return text if len(text) <= limit else text[: limit - 1] + "…"
