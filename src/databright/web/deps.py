"""Dependencies of the routers: the shared state, the browser session, the user, CSRF.

Every route declares what it needs with these ``Annotated`` aliases, so the
signature says whether it reads as anyone, needs a signed-in user, or writes.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from eth_account.signers.local import LocalAccount
from fastapi import Depends, Path, Request

from databright.errors import AccountError, DataBrightError, InputError
from databright.web._state import WebState

__all__ = [
    "CsrfChecked",
    "CurrentUser",
    "DatasetId",
    "Forbidden",
    "OptionalUser",
    "ProposalId",
    "SessionDep",
    "SignInRequired",
    "SignerDep",
    "StateDep",
    "UploadTooLarge",
    "User",
    "WebSession",
    "client_address",
]


# Ids are stored as signed 64-bit integers; larger ones cannot exist.
MAX_ID = 2**63 - 1
DatasetId = Annotated[int, Path(ge=0, le=MAX_ID)]
ProposalId = Annotated[int, Path(ge=0, le=MAX_ID)]


class Forbidden(DataBrightError):
    """A write without a valid CSRF token, or by nobody signed in."""


class SignInRequired(DataBrightError):
    """The route needs a signed-in user."""


class UploadTooLarge(InputError):
    """A request body above the app's upload limit."""


@dataclass(frozen=True)
class User:
    address: str
    name: str  # the keystore account name (local mode) or a short address (wallet)
    mode: str  # "local" or "wallet"


class WebSession:
    """The signed session cookie's contents: an id, a CSRF token and who signed in."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        if "sid" not in data:
            data["sid"] = secrets.token_urlsafe(16)
        if "csrf" not in data:
            data["csrf"] = secrets.token_urlsafe(24)

    @property
    def sid(self) -> str:
        return str(self.data["sid"])

    @property
    def csrf(self) -> str:
        return str(self.data["csrf"])

    def user(self) -> User | None:
        if "address" not in self.data:
            return None
        return User(self.data["address"], self.data.get("name", ""), self.data.get("mode", "wallet"))

    def sign_in(self, user: User) -> None:
        # A new session id and token at sign-in, so a pre-planted cookie is useless.
        self.data.clear()
        self.data.update(sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(24),
                         address=user.address, name=user.name, mode=user.mode)

    def sign_out(self) -> None:
        self.data.clear()
        WebSession(self.data)

    def flash(self, message: str, kind: str = "ok") -> None:
        self.data["flash"] = [kind, message]

    def pop_flash(self) -> tuple[str, str] | None:
        value = self.data.pop("flash", None)
        return (str(value[0]), str(value[1])) if value else None


def _state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def _session(request: Request) -> WebSession:
    return WebSession(request.session)


StateDep = Annotated[WebState, Depends(_state)]
SessionDep = Annotated[WebSession, Depends(_session)]


def _optional_user(session: SessionDep) -> User | None:
    return session.user()


def _current_user(session: SessionDep) -> User:
    user = session.user()
    if user is None:
        raise SignInRequired("sign in first")
    return user


OptionalUser = Annotated[User | None, Depends(_optional_user)]
CurrentUser = Annotated[User, Depends(_current_user)]


async def _check_csrf(request: Request, session: SessionDep, state: StateDep) -> None:
    """Every write: the CSRF token, then one token of the account's and the client's rate limits.

    (The body's size is bounded for every request by ``_security``.)
    """
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        token = str((await request.form(max_files=5000)).get("csrf_token") or "")
    if not token or not hmac.compare_digest(token, session.csrf):
        raise Forbidden("missing or wrong CSRF token; reload the page and try again")
    user = session.user()
    state.limit_write(user.address if user else None, client_address(request))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


CsrfChecked = Annotated[None, Depends(_check_csrf)]


def _signer(user: CurrentUser, session: SessionDep, state: StateDep) -> LocalAccount:
    signer = state.signer(session.sid)
    if signer is None or signer.address != user.address:
        raise AccountError(
            "this session holds no key: browser-wallet accounts send the transaction from the wallet "
            "(POST the same path + '/tx' for it, then its hash to /api/v1/transactions); "
            "local accounts sign in again after a server restart"
        )
    return signer


SignerDep = Annotated[LocalAccount, Depends(_signer)]
