"""Discussion threads: comments signed by their author, stored in the index, verified on display."""

from __future__ import annotations

from typing import Annotated

from eth_account.messages import encode_defunct
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from databright.errors import DataBrightError, InputError
from databright.index import CommentRow
from databright.web._auth import check_signed_now, comment_date, comment_message, recover
from databright.web._pages import back, render
from databright.web._paging import PAGE_HEADERS, Cursor, Limit, set_page_headers
from databright.web._state import WebState
from databright.web.deps import CsrfChecked, CurrentUser, ProposalId, SessionDep, StateDep, User
from databright.web.schemas import CommentCreate, CommentPublic

__all__ = ["router"]

router = APIRouter(tags=["comments"])


def _public(state: WebState, row: CommentRow) -> CommentPublic:
    expected = comment_message(row.proposal_id, state.chain_id, row.author, row.body, _date_of(row.message))
    try:
        verified = expected == row.message and recover(row.message, row.signature) == row.author
    except InputError:
        verified = False
    return CommentPublic(comment_id=row.id, proposal_id=row.proposal_id, author=row.author, body=row.body,
                         message=row.message, signature=row.signature, verified=verified, created=row.created)


def _date_of(message: str) -> str:
    for line in message.split("\n")[:4]:
        if line.startswith("Date: "):
            return line[6:]
    return ""


def add_comment(state: WebState, session: SessionDep, user: User, proposal_id: int, body: CommentCreate) -> CommentPublic:
    """Sign (local account) or check (wallet) the comment, then store it."""
    text = body.body.strip()
    if not text:
        raise InputError("a comment cannot be empty")
    if (status := state.ws.index.proposal(proposal_id).status) != "open":
        # A decided proposal's thread is closed: nothing said now can change the vote, and it would only grow.
        raise InputError(f"proposal {proposal_id} is already {status}; its discussion is closed")
    if body.signature:
        date = body.date or ""
        check_signed_now(date, "the comment")
        message = comment_message(proposal_id, state.chain_id, user.address, text, date)
        if recover(message, body.signature) != user.address:
            raise InputError("the signature is not by the signed-in account")
        signature = body.signature
    else:
        signer = state.signer(session.sid)
        if signer is None or signer.address != user.address:
            raise InputError("sign the comment with your wallet (this session holds no key)")
        message = comment_message(proposal_id, state.chain_id, user.address, text, comment_date())
        signature = signer.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    row = state.ws.index.add_comment(proposal_id, user.address, text, message, signature)
    return _public(state, row)


@router.get("/api/v1/proposals/{proposal_id}/comments", response_model=list[CommentPublic], responses=PAGE_HEADERS)
def list_comments(proposal_id: ProposalId, state: StateDep, request: Request, response: Response,
                  cursor: Cursor = None, limit: Limit = 100) -> list[CommentPublic]:
    """The thread, oldest first, one page at a time."""
    state.ws.index.proposal(proposal_id)
    page = state.ws.index.comments_page(proposal_id, cursor=cursor, limit=limit)
    set_page_headers(request, response, page)
    return [_public(state, c) for c in page.rows]


@router.post("/api/v1/proposals/{proposal_id}/comments", response_model=CommentPublic, status_code=201)
def post_comment(proposal_id: ProposalId, body: CommentCreate, state: StateDep, session: SessionDep, user: CurrentUser,
                 _: CsrfChecked) -> CommentPublic:
    return add_comment(state, session, user, proposal_id, body)


@router.get("/proposals/{proposal_id}/comments", response_class=HTMLResponse, include_in_schema=False)
def comments_fragment(request: Request, proposal_id: ProposalId, state: StateDep) -> HTMLResponse:
    """The thread, polled by the proposal page."""
    state.ws.index.proposal(proposal_id)
    return render(request, "_comments.html", comments=[_public(state, c) for c in state.ws.index.comments(proposal_id)])


@router.post("/proposals/{proposal_id}/comments", include_in_schema=False)
def comment_form(request: Request, proposal_id: ProposalId, body: Annotated[str, Form(max_length=4000)],
                 state: StateDep, session: SessionDep, user: CurrentUser, _: CsrfChecked,
                 date: Annotated[str | None, Form(max_length=40)] = None,
                 signature: Annotated[str | None, Form(max_length=140)] = None) -> RedirectResponse:
    here = f"/proposals/{proposal_id}#discussion"
    try:
        add_comment(state, session, user, proposal_id, CommentCreate(body=body or " ", date=date, signature=signature))
    except DataBrightError as exc:
        return back(request, here, str(exc).splitlines()[0], "error")
    return back(request, here, "Comment posted and signed.")
