"""Payment channels on the account page: close one (its challenge period starts), settle it after.

Local sessions post the form and the server sends the transaction with the
session's key; wallet sessions ask for the prepared transaction (``…/tx``) and
send it from the wallet, as every other write of the dashboard does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse

from databright.chain.modelmarket import Channel
from databright.errors import DataBrightError, InputError, NotFound
from databright.web._pages import back, eth
from databright.web._state import WebState
from databright.web._wallet import prepare
from databright.web.deps import CsrfChecked, CurrentUser, Forbidden, SignerDep, StateDep
from databright.web.schemas import ErrorPublic, WalletTxPublic

__all__ = ["router"]

router = APIRouter(tags=["channels"])
ChannelId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Action = Literal["close", "settle"]


def check(state: WebState, user: str, channel_id: int, action: Action) -> Channel:
    """The channel, if ``user`` may ``action`` it now; checked before any transaction."""
    try:
        channel = state.ws.model_market.channel(channel_id)
    except DataBrightError as exc:
        raise NotFound("channel", channel_id) from exc
    if channel.user.lower() != user.lower():
        raise Forbidden(f"channel {channel_id} is not yours")
    if channel.settled:
        raise InputError(f"channel {channel_id} is already settled")
    if action == "close" and channel.closes_at:
        raise InputError(f"channel {channel_id} is already closing")
    if action == "settle":
        if not channel.closes_at:
            raise InputError(f"close channel {channel_id} first; it can be settled after its challenge period")
        ledger = state.ws.ledger
        # The chain's own clock, not the page clock: settle reverts until the block's time has come.
        now = int(ledger.call_rpc(lambda: ledger.w3.eth.get_block("latest"))["timestamp"])
        if now < channel.closes_at:
            raise InputError(f"channel {channel_id} can be settled in {channel.closes_at - now:,} s, "
                             "when its challenge period ends")
    return channel


def act(state: WebState, signer: LocalAccount, channel_id: int, action: Action) -> str:
    check(state, signer.address, channel_id, action)
    mm = state.ws.model_market
    if action == "close":
        state.write(lambda: mm.close(signer, channel_id))
        return f"Channel {channel_id} is closing; settle it after its challenge period."
    refund = state.write(lambda: mm.settle(signer, channel_id))
    return f"Channel {channel_id} settled: {eth(refund)} refunded."


@router.post("/api/v1/channels/{channel_id}/{action}/tx", response_model=WalletTxPublic,
             responses={400: {"model": ErrorPublic}, 403: {"model": ErrorPublic}})
def prepare_action(channel_id: ChannelId, action: Action, state: StateDep, user: CurrentUser,
                   _: CsrfChecked) -> WalletTxPublic:
    """The unsigned ``close`` or ``settle`` a browser wallet sends; then POST its hash to /transactions."""
    check(state, user.address, channel_id, action)
    functions = state.ws.model_market.contract.functions
    call = functions.close(channel_id) if action == "close" else functions.settle(channel_id)
    return prepare(state, user.address, call)


@router.post("/account/channels/{channel_id}/{action}", include_in_schema=False)
def action_form(request: Request, channel_id: ChannelId, action: Action, state: StateDep, signer: SignerDep,
                _: CsrfChecked) -> RedirectResponse:
    try:
        message = act(state, signer, channel_id, action)
    except DataBrightError as exc:
        return back(request, "/account#channels", str(exc).splitlines()[0], "error")
    return back(request, "/account#channels", message)
