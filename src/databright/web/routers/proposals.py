"""Proposals: the shareholder dashboard, one proposal's page, its live tally, votes and finalizing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from databright.errors import DataBrightError, InputError
from databright.web._charts import histogram
from databright.web._pages import back, render
from databright.web._state import WebState
from databright.index import ProposalRow
from databright.web._details import load_details, required_fields
from databright.web._paging import PAGE_HEADERS, Cursor, Limit, pager, set_page_headers
from databright.web._views import item_public, metadata, proposal_public
from databright.web._wallet import prepare
from databright.web._texts import item_texts
from databright.web.deps import CsrfChecked, CurrentUser, OptionalUser, ProposalId, SignerDep, StateDep
from databright.web.schemas import ErrorPublic, ItemPublic, ProposalPublic, VoteCreate, VotePublic, WalletTxPublic

__all__ = ["router"]

router = APIRouter(tags=["proposals"])
ROWS_PER_PAGE = 25  # proposals on a dashboard page
ITEMS_PER_PAGE = 100  # items on a proposal page
Status = Literal["open", "accepted", "rejected"]


def check_vote(state: WebState, voter: str, proposal_id: int, support: bool) -> int:
    """The voter's weight, if they may vote now; checked first so a refusal costs nothing."""
    p = state.ws.index.proposal(proposal_id)
    if p.status != "open":
        raise InputError(f"proposal {proposal_id} is already {p.status}")
    if support and p.manifest_matches is False:
        raise InputError(f"proposal {proposal_id}'s manifest does not match its on-chain root or item count; vote no")
    if state.ws.index.dataset(p.dataset_id).evaluation_required and not p.evaluated:
        raise InputError(f"proposal {proposal_id} waits for its evaluation; voting opens when it is posted")
    market = state.ws.market
    if market.has_voted(proposal_id, voter):
        raise InputError(f"{voter} has already voted on proposal {proposal_id}")
    weight = market.voting_power(proposal_id, voter)
    if weight == 0:
        raise InputError(f"you held no shares of dataset {p.dataset_id} at the proposal's snapshot, so you cannot vote")
    return weight


def check_finalize(state: WebState, proposal_id: int) -> None:
    p = state.ws.index.proposal(proposal_id)
    if p.status != "open":
        raise InputError(f"proposal {proposal_id} is already {p.status}")
    outcome = proposal_public(state, p).tally.outcome
    if outcome == "awaiting evaluation":
        raise InputError(f"proposal {proposal_id} cannot be finalized yet: it waits for its evaluation")
    if outcome == "voting":
        raise InputError(f"proposal {proposal_id} cannot be finalized yet: no majority of the supply has voted "
                         "and voting is still open")


def vote(state: WebState, signer: LocalAccount, proposal_id: int, support: bool) -> int:
    weight = check_vote(state, signer.address, proposal_id, support)
    state.write(lambda: state.ws.market.vote(signer, proposal_id, support))
    return weight


def finalize(state: WebState, signer: LocalAccount, proposal_id: int) -> str:
    check_finalize(state, proposal_id)
    state.write(lambda: state.ws.market.finalize(signer, proposal_id))
    return state.ws.index.proposal(proposal_id).status


def _votes(state: WebState, proposal_id: int) -> list[VotePublic]:
    state.ws.index.proposal(proposal_id)
    return [VotePublic(voter=v.voter, support=v.support, weight=v.weight, tx_hash=v.tx_hash)
            for v in state.ws.index.votes(proposal_id)]


# -- API ------------------------------------------------------------------------


@router.get("/api/v1/proposals", response_model=list[ProposalPublic], responses=PAGE_HEADERS)
def list_proposals(request: Request, response: Response, state: StateDep,
                   dataset_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                   status: Status | None = None, cursor: Cursor = None, limit: Limit = 100) -> list[ProposalPublic]:
    """Proposals by id, one page at a time (the next page's cursor in ``X-Next-Cursor`` and ``Link``)."""
    if dataset_id is not None:
        state.ws.index.dataset(dataset_id)
    page = state.ws.index.proposals_page(dataset_id, status, cursor=cursor, limit=limit)
    set_page_headers(request, response, page)
    return [proposal_public(state, p) for p in page.rows]


@router.get("/api/v1/proposals/{proposal_id}", response_model=ProposalPublic)
def get_proposal(proposal_id: ProposalId, state: StateDep) -> ProposalPublic:
    return proposal_public(state, state.ws.index.proposal(proposal_id))


@router.get("/api/v1/proposals/{proposal_id}/items", response_model=list[ItemPublic], responses=PAGE_HEADERS)
def get_proposal_items(proposal_id: ProposalId, state: StateDep, request: Request, response: Response,
                       cursor: Cursor = None, limit: Limit = 100) -> list[ItemPublic]:
    """A proposal's items in manifest order, accepted or not: everything its voters approve, page by page."""
    p = state.ws.index.proposal(proposal_id)
    page = state.ws.index.items_page(p.dataset_id, accepted=None, proposal_id=proposal_id, cursor=cursor,
                                     limit=limit)
    set_page_headers(request, response, page)
    return [item_public(r) for r in page.rows]


@router.get("/api/v1/proposals/{proposal_id}/votes", response_model=list[VotePublic], responses=PAGE_HEADERS)
def get_votes(proposal_id: ProposalId, state: StateDep, request: Request, response: Response,
              cursor: Cursor = None, limit: Limit = 100) -> list[VotePublic]:
    state.ws.index.proposal(proposal_id)
    page = state.ws.index.votes_page(proposal_id, cursor=cursor, limit=limit)
    set_page_headers(request, response, page)
    return [VotePublic(voter=v.voter, support=v.support, weight=v.weight, tx_hash=v.tx_hash) for v in page.rows]


@router.post("/api/v1/proposals/{proposal_id}/votes", response_model=ProposalPublic, status_code=201)
def post_vote(proposal_id: ProposalId, body: VoteCreate, state: StateDep, signer: SignerDep,
              _: CsrfChecked) -> ProposalPublic:
    vote(state, signer, proposal_id, body.support)
    return get_proposal(proposal_id, state)


@router.post("/api/v1/proposals/{proposal_id}/finalize", response_model=ProposalPublic)
def post_finalize(proposal_id: ProposalId, state: StateDep, signer: SignerDep, _: CsrfChecked) -> ProposalPublic:
    finalize(state, signer, proposal_id)
    return get_proposal(proposal_id, state)


@router.post("/api/v1/proposals/{proposal_id}/votes/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def prepare_vote(proposal_id: ProposalId, body: VoteCreate, state: StateDep, user: CurrentUser,
                 _: CsrfChecked) -> WalletTxPublic:
    """The unsigned vote a browser wallet sends with ``eth_sendTransaction``; then POST its hash to /transactions."""
    check_vote(state, user.address, proposal_id, body.support)
    return prepare(state, user.address, state.ws.market.vote_call(proposal_id, user.address, body.support))


@router.post("/api/v1/proposals/{proposal_id}/finalize/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def prepare_finalize(proposal_id: ProposalId, state: StateDep, user: CurrentUser, _: CsrfChecked) -> WalletTxPublic:
    """The unsigned finalization a browser wallet sends; then POST its hash to /transactions."""
    check_finalize(state, proposal_id)
    return prepare(state, user.address, state.ws.market.contract.functions.finalize(proposal_id))


# -- pages ----------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request, state: StateDep, user: OptionalUser,
              status: Annotated[Status | Literal[""] | None, Query()] = None, cursor: Cursor = None) -> HTMLResponse:
    index = state.ws.index
    page = index.proposals_page(status=status or None, cursor=cursor, limit=ROWS_PER_PAGE, newest_first=True)
    names = {d.dataset_id: d.name for d in index.datasets()}
    held = {h.dataset_id for h in index.holdings(user.address) if h.balance > 0} if user else set()

    def awaits(p: ProposalRow) -> bool:
        return user is not None and p.dataset_id in held and not any(
            v.voter.lower() == user.address.lower() for v in index.votes(p.proposal_id))

    # Open proposals only, newest first: what a voter can still act on, not the whole history.
    awaiting = [] if status not in (None, "", "open") or cursor else [
        p for p in index.proposals_page(status="open", limit=ROWS_PER_PAGE, newest_first=True).rows if awaits(p)]
    chosen = {p.proposal_id for p in awaiting}
    return render(request, "dashboard.html", awaiting=[proposal_public(state, p) for p in awaiting],
                  others=[proposal_public(state, p) for p in page.rows if p.proposal_id not in chosen], names=names,
                  status=status or "", pager=pager(request, page), total=index.proposal_count(status=status or None))


def _evaluation(state: WebState, report_cid: str | None) -> dict[str, Any] | None:
    if not report_cid:
        return None
    from databright.evaluator import load_report

    try:
        results = load_report(state.ws.store, report_cid)["results"]
    except (DataBrightError, KeyError):
        return None  # a seed's note, or a report this store does not hold
    signals = results.get("signals", {})
    values = [float(v) for v in signals.get("knn_values", [])]
    return {"gain": results["gain"], "shares": results.get("shares"), "seeds": len(results.get("scores", [])),
            "signals": signals, "histogram": histogram(values, "items by KNN-Shapley value (×10⁻⁴)", scale=1e4),
            "mislabels": set(signals.get("suspected_mislabels", [])),
            "duplicates": set(signals.get("exact_duplicates", [])) | {
                int(pair[0]) if isinstance(pair, list) else int(pair) for pair in signals.get("near_duplicates", [])},
            "knn": values}


def _live(state: WebState, proposal_id: int) -> dict[str, Any]:
    p = state.ws.index.proposal(proposal_id)
    d = state.ws.index.dataset(p.dataset_id)
    return {"p": proposal_public(state, p, d), "d": d, "votes": _votes(state, proposal_id)}


@router.get("/proposals/{proposal_id}", response_class=HTMLResponse, include_in_schema=False)
def proposal_page(request: Request, proposal_id: ProposalId, state: StateDep, user: OptionalUser,
                  cursor: Cursor = None) -> HTMLResponse:
    live = _live(state, proposal_id)
    p = live["p"]
    items = state.ws.index.items_page(p.dataset_id, accepted=None, proposal_id=proposal_id, cursor=cursor,
                                      limit=ITEMS_PER_PAGE)
    evaluation = _evaluation(state, p.report_cid)
    voted = user is not None and any(v.voter.lower() == user.address.lower() for v in live["votes"])
    details = load_details(state.ws.home.root, state.chain_id, p.dataset_id, p.manifest_cid, p.contributor)
    return render(request, "proposal.html", **live, items=[item_public(r) for r in items.rows], item_total=p.items,
                  pager=pager(request, items, "cursor", "#items"), evaluation=evaluation, voted=voted,
                  kind=live["d"].kind, details=details, texts=item_texts(state.ws.store, items.rows, live["d"].kind),
                  asked=required_fields(metadata(live["d"])))


@router.get("/proposals/{proposal_id}/live", response_class=HTMLResponse, include_in_schema=False)
def proposal_live(request: Request, proposal_id: ProposalId, state: StateDep, user: OptionalUser) -> HTMLResponse:
    """The tally and votes fragment that the proposal page polls."""
    live = _live(state, proposal_id)
    voted = user is not None and any(v.voter.lower() == user.address.lower() for v in live["votes"])
    return render(request, "_tally.html", **live, voted=voted)


@router.post("/proposals/{proposal_id}/vote", include_in_schema=False)
def vote_form(request: Request, proposal_id: ProposalId, support: Annotated[Literal["yes", "no"], Form()],
              state: StateDep, signer: SignerDep, _: CsrfChecked) -> RedirectResponse:
    here = f"/proposals/{proposal_id}"
    try:
        weight = vote(state, signer, proposal_id, support == "yes")
    except DataBrightError as exc:
        return back(request, here, str(exc).splitlines()[0], "error")
    return back(request, here, f"You voted {support} with {weight:,} shares.")


@router.post("/proposals/{proposal_id}/finalize", include_in_schema=False)
def finalize_form(request: Request, proposal_id: ProposalId, state: StateDep, signer: SignerDep,
                  _: CsrfChecked) -> RedirectResponse:
    here = f"/proposals/{proposal_id}"
    try:
        status = finalize(state, signer, proposal_id)
    except DataBrightError as exc:
        return back(request, here, str(exc).splitlines()[0], "error")
    return back(request, here, f"Proposal {proposal_id} is {status}.")
