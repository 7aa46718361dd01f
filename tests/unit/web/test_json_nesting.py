"""The body scanner that refuses deeply nested JSON: brackets inside strings and escaped quotes do not count,
and a body cut into chunks at any byte measures as the whole does."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from databright.web._security import _Nesting

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n', max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), inner,
                                                                 max_size=3),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_JSON, st.data())
def test_the_depth_is_the_documents_however_it_is_chunked(value: object, data: st.DataObject) -> None:
    text = json.dumps(value, ensure_ascii=False).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    scanner = _Nesting()
    deepest = 0
    for start, stop in zip([0, *cuts], [*cuts, len(text)], strict=True):
        deepest = scanner.feed(text[start:stop])
    assert deepest == _depth(value)


def test_brackets_in_strings_and_escaped_quotes_are_text() -> None:
    assert _Nesting().feed(rb'{"a": "[[[[\"[[[", "b": ["\\"]}') == 2
    scanner = _Nesting()
    scanner.feed(b'["\\')  # the backslash escapes the first byte of the next chunk
    assert scanner.feed(b'"[[[["]') == 1
