"""Errors raised by the storage part.

StorageError
├── BlobNotFound      no blob with that CID in the store
├── IntegrityError    a stored blob's bytes do not match its CID's digest
├── InvalidCID        a string that is not a CIDv1/raw/sha2-256/base32 CID
└── ManifestError     a manifest (or the inputs it is built from) is malformed
"""

from __future__ import annotations

from databright.errors import StorageError

__all__ = ["BlobNotFound", "IntegrityError", "InvalidCID", "ManifestError", "StorageError"]


class BlobNotFound(StorageError):
    """The store holds no blob with the requested CID."""


class IntegrityError(StorageError):
    """A blob read back from a store does not hash to the digest in its CID."""


class InvalidCID(StorageError):
    """A string could not be parsed as a DataBright CID."""


class ManifestError(StorageError):
    """A manifest, or the folder/CSV/table it is built from, is malformed."""
