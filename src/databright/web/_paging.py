"""Pages of the index in the API and on the pages: cursor and limit parameters, next/previous links.

API lists keep their bodies (a JSON array) and say where the neighbouring pages
are in headers: ``X-Next-Cursor`` / ``X-Prev-Cursor`` hold the opaque cursors
to pass back as ``?cursor=``, and ``Link`` (RFC 8288) holds the full URLs.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from databright.index import Page

__all__ = ["Cursor", "Limit", "PAGE_HEADERS", "pager", "set_page_headers"]

Cursor = Annotated[str | None, Query(max_length=600, description=(
    "where the page starts: a next_cursor or prev_cursor (X-Next-Cursor / X-Prev-Cursor) of this list"))]
Limit = Annotated[int, Query(ge=1, le=500, description="rows per page (at most 500)")]

PAGE_HEADERS: dict[int | str, dict[str, Any]] = {200: {"headers": {
    "X-Next-Cursor": {"description": "cursor of the next page; absent on the last", "schema": {"type": "string"}},
    "X-Prev-Cursor": {"description": "cursor of the previous page; absent on the first", "schema": {"type": "string"}},
    "Link": {"description": 'URLs of the neighbouring pages, rel="next" and rel="prev"', "schema": {"type": "string"}},
}}}


def _url(request: Request, param: str, cursor: str, anchor: str = "") -> str:
    query = {k: v for k, v in request.query_params.items() if k != param}
    return f"{request.url.path}?{urlencode({**query, param: cursor})}{anchor}"


def set_page_headers(request: Request, response: Response, page: Page[Any]) -> None:
    links = []
    for rel, cursor, header in (("next", page.next_cursor, "X-Next-Cursor"), ("prev", page.prev_cursor, "X-Prev-Cursor")):
        if cursor is not None:
            response.headers[header] = cursor
            links.append(f'<{_url(request, "cursor", cursor)}>; rel="{rel}"')
    if links:
        response.headers["Link"] = ", ".join(links)


def pager(request: Request, page: Page[Any], param: str = "cursor", anchor: str = "") -> dict[str, str | None]:
    """What ``_pager.html`` needs: the links to the first, previous and next pages (None where there is none)."""
    rest = urlencode({k: v for k, v in request.query_params.items() if k != param})
    return {
        "prev": None if page.prev_cursor is None else _url(request, param, page.prev_cursor, anchor),
        "next": None if page.next_cursor is None else _url(request, param, page.next_cursor, anchor),
        "first": None if page.prev_cursor is None else f"{request.url.path}{'?' + rest if rest else ''}{anchor}",
    }
