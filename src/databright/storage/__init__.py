"""Content-addressed storage: CIDs, blob stores, Merkle commitments, manifests.

See DESIGN.md ("storage") and docs/protocol.md for the rules implemented here.
"""

from __future__ import annotations

from ._blobstore import BlobStore, FsspecBlobStore, LocalBlobStore, open_store
from ._cid import CID, cid_from_digest, cid_of, digest_of_cid, is_cid
from ._importers import FORMATS, ImportedItem, import_items, manifest_from_source
from ._errors import BlobNotFound, IntegrityError, InvalidCID, ManifestError, StorageError
from ._manifest import (
    MANIFEST_VERSION,
    Manifest,
    ManifestItem,
    ManifestWriter,
    Progress,
    canonical_json,
    load_report,
    manifest_from_folder,
    manifest_from_table,
    row_location,
    table_columns,
)
from ._text import MAX_TEXT_BYTES, TextItem, decode_text, encode_pair, encode_text, text_preview
from ._text_import import TEXT_FORMATS, text_source
from ._merkle import MerkleRoot, MerkleTree, batch_commitment, item_leaf, label_hash, merkle_root, verify_proof

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "CID",
    "FORMATS",
    "FsspecBlobStore",
    "ImportedItem",
    "IntegrityError",
    "InvalidCID",
    "LocalBlobStore",
    "MANIFEST_VERSION",
    "MAX_TEXT_BYTES",
    "Manifest",
    "ManifestError",
    "ManifestItem",
    "ManifestWriter",
    "MerkleRoot",
    "MerkleTree",
    "Progress",
    "StorageError",
    "TEXT_FORMATS",
    "TextItem",
    "batch_commitment",
    "canonical_json",
    "cid_from_digest",
    "cid_of",
    "decode_text",
    "digest_of_cid",
    "encode_pair",
    "encode_text",
    "import_items",
    "is_cid",
    "item_leaf",
    "label_hash",
    "load_report",
    "manifest_from_folder",
    "manifest_from_source",
    "manifest_from_table",
    "merkle_root",
    "open_store",
    "row_location",
    "table_columns",
    "text_preview",
    "text_source",
    "verify_proof",
]
