from __future__ import annotations

import databright.storage as storage


def test_all_is_sorted_and_complete() -> None:
    assert storage.__all__ == sorted(storage.__all__)
    public = {
        name
        for name, value in vars(storage).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("databright.storage")
    }
    assert public <= set(storage.__all__)
    for name in storage.__all__:
        assert hasattr(storage, name), name


def test_error_tree() -> None:
    for name in ("BlobNotFound", "IntegrityError", "InvalidCID", "ManifestError"):
        assert issubclass(getattr(storage, name), storage.StorageError)
