"""``/blobs/{cid}``: items, manifests and reports from the blob store, digest-verified."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from databright.web.deps import StateDep

__all__ = ["router"]

router = APIRouter(tags=["blobs"])

_MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp")]


def content_type(data: bytes) -> str:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:1] in (b"{", b"["):
        return "application/json"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


@router.get("/blobs/{cid}", response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
def get_blob(cid: str, state: StateDep) -> Response:
    """A blob by CID; the store checks its digest, so a tampered blob is never served."""
    data = state.ws.store.get(cid)
    return Response(data, media_type=content_type(data), headers={
        "Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"})
