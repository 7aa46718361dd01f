"""Transactions sent by browser wallets: the chain to send them on, and confirming them by hash.

The ``…/tx`` routes of proposals and accounts prepare a wallet's transaction;
the page sends it with the wallet and posts the hash here.
"""

from __future__ import annotations

from fastapi import APIRouter

from databright.web._wallet import confirm
from databright.web.deps import CsrfChecked, CurrentUser, StateDep
from databright.web.schemas import ChainPublic, ErrorPublic, TxHashCreate, TxResultPublic

__all__ = ["router"]

router = APIRouter(tags=["transactions"])


@router.get("/api/v1/chain", response_model=ChainPublic)
def get_chain(state: StateDep) -> ChainPublic:
    """The chain id a wallet must use, and the node's JSON-RPC URL (null for an in-process chain)."""
    return ChainPublic(chain_id=state.chain_id, chain_id_hex=hex(state.chain_id), rpc_url=state.ws.rpc_url,
                       contract=state.contract)


@router.post("/api/v1/transactions", response_model=TxResultPublic,
             responses={403: {"model": ErrorPublic}, 404: {"model": ErrorPublic}, 409: {"model": ErrorPublic}})
def post_transaction(body: TxHashCreate, state: StateDep, user: CurrentUser, _: CsrfChecked) -> TxResultPublic:
    """Wait (bounded) for a wallet-sent transaction's receipt, sync the index; say what it did or why it reverted."""
    return confirm(state, user.address, body.tx_hash)
