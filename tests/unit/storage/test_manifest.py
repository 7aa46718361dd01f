from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databright.storage import (
    Manifest,
    ManifestError,
    ManifestItem,
    MerkleTree,
    cid_of,
    digest_of_cid,
    item_leaf,
    verify_proof,
)

A = cid_of(b"a")
B = cid_of(b"b")


def _manifest() -> Manifest:
    return Manifest(
        [
            ManifestItem(A, "cat", {"filename": "a.png", "row": 0}),
            ManifestItem(B, "chat 🐈", {"filename": "b.png", "tags": ["x", 1, None, 2.5]}),
        ]
    )


def test_canonical_bytes_are_stable() -> None:
    expected = (
        '{"databright_manifest":1,"items":2}\n'
        f'{{"cid":"{A}","label":"cat","metadata":{{"filename":"a.png","row":0}}}}\n'
        f'{{"cid":"{B}","label":"chat 🐈","metadata":'
        '{"filename":"b.png","tags":["x",1,null,2.5]}}\n'
    ).encode()
    assert _manifest().to_bytes() == expected
    assert _manifest().cid == cid_of(expected)


def test_key_order_of_metadata_does_not_matter() -> None:
    m1 = Manifest([ManifestItem(A, "x", {"b": 1, "a": 2})])
    m2 = Manifest([ManifestItem(A, "x", {"a": 2, "b": 1})])
    assert m1.to_bytes() == m2.to_bytes() and m1 == m2


def test_round_trip_and_accessors() -> None:
    m = _manifest()
    back = Manifest.from_bytes(m.to_bytes())
    assert back == m and back.to_bytes() == m.to_bytes()
    assert m.item_cids == [A, B]
    assert m.labels == ["cat", "chat 🐈"]
    assert len(m) == 2 and m[1].cid == B


def test_root_is_over_item_leaves_in_order() -> None:
    m = _manifest()
    leaves = [item_leaf(digest_of_cid(A), "cat"), item_leaf(digest_of_cid(B), "chat 🐈")]
    assert m.root == MerkleTree(leaves).root
    for i in range(2):
        assert m.leaf(i) == leaves[i]
        assert verify_proof(m.root, leaves[i], m.proof(i))


def test_save_and_load(local_store) -> None:  # type: ignore[no-untyped-def]
    m = _manifest()
    cid = m.save(local_store)
    assert cid == m.cid
    assert Manifest.load(local_store, cid) == m


def test_item_validation() -> None:
    with pytest.raises(ManifestError, match="multibase"):
        ManifestItem("Qmfoo", "x")  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="label must be a string"):
        ManifestItem(A, 3)  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="JSON object"):
        ManifestItem(A, "x", ["no"])  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="JSON-serialisable"):
        ManifestItem(A, "x", {"v": float("nan")})
    with pytest.raises(ManifestError, match="JSON-serialisable"):
        ManifestItem(A, "x", {"v": object()})
    with pytest.raises(ManifestError, match="round trip"):
        ManifestItem(A, "x", {1: "int key"})  # type: ignore[dict-item]
    with pytest.raises(ManifestError, match="at least one item"):
        Manifest([])


def test_metadata_is_copied() -> None:
    meta = {"k": [1]}
    item = ManifestItem(A, "x", meta)
    meta["k"].append(2)
    assert item.metadata == {"k": [1]}


GOOD_HEADER = '{"databright_manifest":1,"items":1}\n'
GOOD_ROW = f'{{"cid":"{A}","label":"x","metadata":{{}}}}\n'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        (GOOD_HEADER + GOOD_ROW.rstrip("\n"), "end with a newline"),
        (
            '{"databright_manifest":2,"items":1}\n' + GOOD_ROW,
            "line 1: unsupported manifest version",
        ),
        ('{"items":1}\n' + GOOD_ROW, "line 1: expected schema line"),
        ('{"databright_manifest":1,"items":2}\n' + GOOD_ROW, "line 1: header announces 2"),
        ('{"databright_manifest":1,"items":0}\n', "at least one item"),
        (GOOD_HEADER + "not json\n", "line 2: invalid JSON"),
        (GOOD_HEADER + "[1]\n", "line 2: expected a JSON object"),
        (GOOD_HEADER + "\n", "line 2: empty line"),
        (GOOD_HEADER + GOOD_ROW.replace('":', '": '), "line 2: not canonical"),
        (GOOD_HEADER + f'{{"label":"x","cid":"{A}","metadata":{{}}}}\n', "line 2: not canonical"),
        (GOOD_HEADER + f'{{"cid":"{A}","label":"x"}}\n', "line 2: item keys"),
        (
            GOOD_HEADER + f'{{"cid":"{A}","extra":1,"label":"x","metadata":{{}}}}\n',
            "line 2: item keys",
        ),
        (GOOD_HEADER + GOOD_ROW.replace(A, "bafy"), "line 2: .*base32"),
        (GOOD_HEADER + f'{{"cid":"{A}","label":7,"metadata":{{}}}}\n', "line 2: label"),
        (GOOD_HEADER + f'{{"cid":"{A}","label":"x","metadata":[]}}\n', "line 2: metadata"),
        (GOOD_HEADER + f'{{"cid":"{A}","label":"x","metadata":{{"v":NaN}}}}\n', "line 2: "),
        (GOOD_HEADER + GOOD_ROW + GOOD_ROW, "line 1: header announces 1 items, found 2"),
        (GOOD_HEADER.replace("\n", "\r\n") + GOOD_ROW, "line 1"),
        # Deep enough to overflow the C stack under py-evm's raised recursion limit with json.loads.
        (GOOD_HEADER + "[" * 200_000 + "]" * 200_000 + "\n", "line 2: invalid JSON"),
    ],
)
def test_strict_parsing(text: str, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        Manifest.from_bytes(text.encode("utf-8"))


def test_rejects_non_utf8() -> None:
    with pytest.raises(ManifestError, match="UTF-8"):
        Manifest.from_bytes(GOOD_HEADER.encode() + b'{"cid":"\xff"}\n')


def test_escaped_unicode_is_not_canonical() -> None:
    row = json.dumps(
        {"cid": A, "label": "é", "metadata": {}}, separators=(",", ":"), sort_keys=True
    )
    with pytest.raises(ManifestError, match="line 2: not canonical"):
        Manifest.from_bytes((GOOD_HEADER + row + "\n").encode())


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.lists(
        st.tuples(
            st.binary(max_size=8), st.text(), st.dictionaries(st.text(), json_values, max_size=3)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_round_trip_property(rows: list[tuple[bytes, str, dict[str, object]]]) -> None:
    m = Manifest(ManifestItem(cid_of(data), label, meta) for data, label, meta in rows)
    data = m.to_bytes()
    back = Manifest.from_bytes(data)
    assert back.to_bytes() == data
    assert back.root == m.root
