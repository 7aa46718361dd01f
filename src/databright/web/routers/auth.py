"""Signing in and out: local keystore accounts (embedded default) and Sign-In with Ethereum."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from databright.chain import Keystore
from databright.errors import DataBrightError, InputError
from databright.web._auth import SIWE_TTL, new_nonce, siwe_message, verify_siwe
from databright.web._pages import back, render
from databright.web._state import WebState
from databright.web.deps import CsrfChecked, SessionDep, StateDep, User, client_address
from databright.web.schemas import LocalSignInCreate, NoncePublic, SessionPublic, SiweSignInCreate

__all__ = ["router"]

router = APIRouter(tags=["auth"])


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/dashboard"


def sign_in_local(state: WebState, session: SessionDep, body: LocalSignInCreate, client: str) -> User:
    """Unlock a keystore account; its key stays in this server's memory for this session only.

    Wrong passwords are rate-limited per account name and per client address.
    """
    refund = state.password_guess(body.account, client)
    # A fresh Keystore: its unlock cache must not let a second caller skip the password.
    signer = Keystore(state.ws.home.keystore).unlock(body.account, body.password)
    refund()
    stored = state.ws.keystore.get(body.account)
    state.forget(session.sid)
    user = User(signer.address, stored.name, "local")
    session.sign_in(user)
    state.keep_signer(session.sid, signer)
    return user


def _session_public(session: SessionDep) -> SessionPublic:
    user = session.user()
    return SessionPublic(address=user.address if user else None, name=user.name if user else None,
                         mode=user.mode if user else None, csrf_token=session.csrf)


@router.get("/api/v1/session", response_model=SessionPublic)
def get_session(session: SessionDep) -> SessionPublic:
    """Who is signed in, and the CSRF token every write must send as ``X-CSRF-Token``."""
    return _session_public(session)


@router.post("/api/v1/auth/local", response_model=SessionPublic)
def post_local(request: Request, body: LocalSignInCreate, state: StateDep, session: SessionDep,
               _: CsrfChecked) -> SessionPublic:
    sign_in_local(state, session, body, client_address(request))
    return _session_public(session)


@router.get("/api/v1/auth/nonce", response_model=NoncePublic)
def get_nonce(request: Request, state: StateDep, session: SessionDep) -> NoncePublic:
    """A fresh nonce and the EIP-4361 message to sign (``{address}`` to fill in)."""
    nonce = new_nonce()
    session.data["siwe_nonce"] = [nonce, time.time()]
    template = siwe_message(request.url.netloc, "0x" + "00" * 20, str(request.base_url).rstrip("/"),
                            state.chain_id, nonce).replace("0x" + "00" * 20, "{address}")
    return NoncePublic(nonce=nonce, message_template=template)


@router.post("/api/v1/auth/siwe", response_model=SessionPublic)
def post_siwe(request: Request, body: SiweSignInCreate, state: StateDep, session: SessionDep,
              _: CsrfChecked) -> SessionPublic:
    issued = session.data.pop("siwe_nonce", None)
    if not issued:
        raise InputError("request a sign-in nonce first")
    nonce, when = issued
    if time.time() - float(when) > SIWE_TTL.total_seconds():
        raise InputError("the sign-in nonce has expired; request a new one")
    address = verify_siwe(body.message, body.signature, domain=request.url.netloc, nonce=str(nonce),
                          origin=str(request.base_url).rstrip("/"), chain_id=state.chain_id)
    state.forget(session.sid)
    session.sign_in(User(address, f"{address[:6]}…{address[-4:]}", "wallet"))
    return _session_public(session)


@router.post("/api/v1/auth/signout", response_model=SessionPublic)
def post_signout(state: StateDep, session: SessionDep, _: CsrfChecked) -> SessionPublic:
    state.forget(session.sid)
    session.sign_out()
    return _session_public(session)


@router.get("/signin", response_class=HTMLResponse, include_in_schema=False)
def signin_page(request: Request, state: StateDep,
                next_: Annotated[str | None, Query(alias="next", max_length=300)] = None) -> HTMLResponse:
    accounts = [a.name for a in state.ws.keystore.list()]
    return render(request, "signin.html", accounts=accounts, next=_safe_next(next_), chain_id=state.chain_id)


@router.post("/signin", include_in_schema=False)
def signin_form(request: Request, account: Annotated[str, Form(max_length=100)],
                password: Annotated[str, Form(max_length=1000)], state: StateDep, session: SessionDep,
                _: CsrfChecked, next_: Annotated[str | None, Form(alias="next", max_length=300)] = None
                ) -> RedirectResponse:
    try:
        user = sign_in_local(state, session, LocalSignInCreate(account=account or " ", password=password),
                             client_address(request))
    except DataBrightError as exc:
        return back(request, f"/signin?next={_safe_next(next_)}", str(exc).splitlines()[0], "error")
    return back(request, _safe_next(next_), f"Signed in as {user.name} ({user.address}).")


@router.post("/signout", include_in_schema=False)
def signout_form(request: Request, state: StateDep, session: SessionDep, _: CsrfChecked) -> RedirectResponse:
    state.forget(session.sid)
    session.sign_out()
    return back(request, "/", "Signed out.")
