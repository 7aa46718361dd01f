"""Accounts: shares per dataset, proposals and their state, withdrawable revenue and withdrawals."""

from __future__ import annotations

from typing import Annotated

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from web3 import Web3

from databright.errors import DataBrightError, InputError
from databright.web._model_views import models_paid
from databright.web._pages import back, eth, render
from databright.web._state import WebState
from databright.web._views import proposal_public
from databright.web._registry import channels, ranked
from databright.web._try import signed
from databright.web._wallet import prepare
from databright.web.deps import CsrfChecked, CurrentUser, OptionalUser, SignerDep, StateDep
from databright.web.schemas import (
    AccountPublic,
    ErrorPublic,
    HoldingPublic,
    RefundPublic,
    WalletTxPublic,
    WithdrawalCreate,
    WithdrawalPublic,
)

__all__ = ["router"]

router = APIRouter(tags=["accounts"])


def account(state: WebState, address: str) -> AccountPublic:
    if not Web3.is_address(address):
        raise InputError(f"{address!r} is not an Ethereum address")
    address = Web3.to_checksum_address(address)
    index = state.ws.index
    holdings = []
    for h in index.holdings(address):
        d = index.dataset(h.dataset_id)
        # Pending revenue is pull-accounted on-chain; one cheap view call per dataset held.
        pending = state.ws.market.withdrawable(h.dataset_id, address)
        holdings.append(HoldingPublic(dataset_id=d.dataset_id, dataset=d.name, shares=h.balance,
                                      fraction=h.balance / d.total_supply if d.total_supply else 0.0,
                                      withdrawn_wei=h.withdrawn, withdrawable_wei=pending))
    proposals = [proposal_public(state, p) for p in index.proposals() if p.contributor.lower() == address.lower()]
    return AccountPublic(address=address, holdings=holdings, proposals=proposals,
                         refundable_wei=state.ws.market.refundable(address), models_paid=models_paid(state, address))


def check_withdraw(state: WebState, holder: str, dataset_id: int) -> None:
    state.ws.index.dataset(dataset_id)
    if state.ws.market.withdrawable(dataset_id, holder) == 0:
        raise InputError(f"nothing to withdraw from dataset {dataset_id}")


def check_refund(state: WebState, account: str) -> None:
    if state.ws.market.refundable(account) == 0:
        raise InputError("no bond refund is waiting for you")


def refund(state: WebState, signer: LocalAccount) -> int:
    check_refund(state, signer.address)
    return state.write(lambda: state.ws.market.withdraw_refund(signer))


def withdraw(state: WebState, signer: LocalAccount, dataset_id: int) -> int:
    check_withdraw(state, signer.address, dataset_id)
    return state.write(lambda: state.ws.market.withdraw(signer, dataset_id))


@router.get("/api/v1/accounts/me", response_model=AccountPublic)
def get_me(state: StateDep, user: CurrentUser) -> AccountPublic:
    return account(state, user.address)


@router.get("/api/v1/accounts/{address}", response_model=AccountPublic)
def get_account(address: str, state: StateDep) -> AccountPublic:
    return account(state, address)


@router.post("/api/v1/accounts/me/withdrawals", response_model=WithdrawalPublic, status_code=201)
def post_withdrawal(body: WithdrawalCreate, state: StateDep, signer: SignerDep, _: CsrfChecked) -> WithdrawalPublic:
    return WithdrawalPublic(dataset_id=body.dataset_id, amount_wei=withdraw(state, signer, body.dataset_id))


@router.post("/api/v1/accounts/me/withdrawals/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def prepare_withdrawal(body: WithdrawalCreate, state: StateDep, user: CurrentUser, _: CsrfChecked) -> WalletTxPublic:
    """The unsigned withdrawal a browser wallet sends; then POST its hash to /transactions."""
    check_withdraw(state, user.address, body.dataset_id)
    return prepare(state, user.address, state.ws.market.contract.functions.withdraw(body.dataset_id))


@router.post("/api/v1/accounts/me/refunds", response_model=RefundPublic, status_code=201)
def post_refund(state: StateDep, signer: SignerDep, _: CsrfChecked) -> RefundPublic:
    """Claim the bonds refunded to you (accepted and expired proposals)."""
    return RefundPublic(amount_wei=refund(state, signer))


@router.post("/api/v1/accounts/me/refunds/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def prepare_refund(state: StateDep, user: CurrentUser, _: CsrfChecked) -> WalletTxPublic:
    """The unsigned refund claim a browser wallet sends; then POST its hash to /transactions."""
    check_refund(state, user.address)
    return prepare(state, user.address, state.ws.market.contract.functions.withdraw_refund())


@router.post("/account/refund", include_in_schema=False)
def refund_form(request: Request, state: StateDep, signer: SignerDep, _: CsrfChecked) -> RedirectResponse:
    try:
        amount = refund(state, signer)
    except DataBrightError as exc:
        return back(request, "/account", str(exc).splitlines()[0], "error")
    return back(request, "/account", f"Claimed {eth(amount)} of refunded bonds.")


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
def account_page(request: Request, state: StateDep, user: OptionalUser) -> Response:
    if user is None:
        return back(request, "/signin?next=/account", "Sign in to see your account.", "info")
    names = {d.dataset_id: d.name for d in state.ws.index.datasets()}
    mine = channels(state, user.address)
    return render(request, "account.html", account=account(state, user.address), names=names, now=state.now(),
                  channels=mine, spent={c.channel_id: signed(state, c) for c in mine},
                  my_models=ranked(state, owner=user.address))


@router.post("/account/withdraw", include_in_schema=False)
def withdraw_form(request: Request, dataset_id: Annotated[int, Form(ge=1, le=2**63 - 1)], state: StateDep,
                  signer: SignerDep, _: CsrfChecked) -> RedirectResponse:
    try:
        amount = withdraw(state, signer, dataset_id)
    except DataBrightError as exc:
        return back(request, "/account", str(exc).splitlines()[0], "error")
    return back(request, "/account", f"Withdrew {eth(amount)} from dataset {dataset_id}.")
