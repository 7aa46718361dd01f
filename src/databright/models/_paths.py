"""The model market's files in a home, shared by the commands and the dashboard.

``databright model serve`` writes ``{"url", "pid"}`` to its announcement while it
runs, so ``predict`` and the dashboard of the same home find the server without
being told. The signed record is the high-water mark of every voucher this
home's accounts signed (see :class:`databright.models.SignedRecord`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["announce_path", "announced_url", "signed_record_path"]


def announce_path(home: Path, chain_id: int, model_id: int) -> Path:
    return home / "models" / f"serve-{chain_id}-{model_id}.json"


def announced_url(home: Path, chain_id: int, model_id: int) -> str | None:
    """The URL a live ``model serve`` of this home announced for the model, if one runs."""
    try:
        info = json.loads(announce_path(home, chain_id, model_id).read_text())
        os.kill(int(info["pid"]), 0)
        return str(info["url"])
    except PermissionError:  # alive, under another user
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def signed_record_path(home: Path, chain_id: int) -> Path:
    return home / "models" / f"signed-{chain_id}.json"
