"""The web dashboard and REST API of DataBright (FastAPI, Jinja2 + htmx).

``create_app(workspace)`` builds the application; ``databright serve`` runs it
beside the embedded node and the event indexer.
"""

from __future__ import annotations

from databright.web.app import DEFAULT_HOSTS, MAX_UPLOAD_BYTES, Limits, create_app, load_secret

__all__ = ["DEFAULT_HOSTS", "Limits", "MAX_UPLOAD_BYTES", "create_app", "load_secret"]
