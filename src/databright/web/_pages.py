"""Rendering pages: the Jinja2 environment, its filters, and what every page gets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from databright.web.deps import WebSession

__all__ = ["back", "eth", "plural", "render", "templates"]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def eth(wei: int | None) -> str:
    if not wei:
        return "0 ETH"
    text = f"{Decimal(wei) / Decimal(10**18):.6f}".rstrip("0").rstrip(".")
    return f"{text} ETH"


def _short(value: str | None, keep: int = 6) -> str:
    if not value:
        return ""
    return value if len(value) <= 2 * keep + 1 else f"{value[:keep]}…{value[-4:]}"


def _duration(seconds: int) -> str:
    if seconds <= 0:
        return "closed"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {rest % 60:02d}s"


def plural(count: int, noun: str) -> str:
    """``1 item``, ``2 items``, ``1,497 items``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


templates.env.filters.update(eth=eth, short=_short, duration=_duration, plural=plural,
                             pct=lambda v: f"{v * 100:.1f}%", num=lambda v: f"{v:,}",
                             ppm=lambda v: "—" if v is None else f"{v / 10_000:.2f}%",
                             bps=lambda v: f"{v / 100:g}%")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    session = WebSession(request.session)
    context.update(user=session.user(), csrf=session.csrf, flash=session.pop_flash())
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def back(request: Request, url: str, message: str, kind: str = "ok") -> RedirectResponse:
    """Post/redirect/get: show ``message`` on the next page."""
    WebSession(request.session).flash(message, kind)
    return RedirectResponse(url, status_code=303)
