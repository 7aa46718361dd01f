"""Transactions a browser wallet sends: prepared here unsigned, sent by the wallet, confirmed here.

A wallet session holds no key on the server. So the server builds the exact
call the wallet should send (after the same checks as local mode, and a gas
estimate from the user's address, so a call that would revert is refused with
its reason before the wallet shows anything), the page hands it to the
wallet's ``eth_sendTransaction``, and posts the hash back. Confirming waits a
bounded time for the receipt, syncs the index and says what happened, in the
words the local-mode pages use.
"""

from __future__ import annotations

from typing import Any

from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3Exception

from databright.chain._ledger import revert_reason
from databright.errors import ChainError, NotFound, TransactionError
from databright.web._pages import eth, plural
from databright.web._state import WebState
from databright.web.deps import Forbidden
from databright.web.schemas import TxResultPublic, WalletTxPublic

__all__ = ["RECEIPT_TIMEOUT_S", "confirm", "prepare"]

RECEIPT_TIMEOUT_S = 60.0
_GAS_MARGIN = 1.25


def prepare(state: WebState, sender: str, call: ContractFunction, value: int = 0) -> WalletTxPublic:
    """The ``eth_sendTransaction`` parameters for ``call`` from ``sender``; refuses a call that would revert."""
    ledger = state.ws.ledger
    tx: dict[str, Any] = {"from": sender, "to": call.address, "data": call._encode_transaction_data(),
                          "value": value, "chainId": ledger.chain_id}
    # On the pending block, where it will run (a reveal right after its commit
    # would look too early on the latest one).
    estimate = ledger.call_rpc(lambda: ledger.w3.eth.estimate_gas(tx, "pending"))  # type: ignore[arg-type]
    return WalletTxPublic.model_validate({
        "from": sender, "to": str(call.address), "data": str(tx["data"]), "value": hex(value),
        "chainId": hex(ledger.chain_id), "gas": hex(int(estimate * _GAS_MARGIN) + 10_000),
    })


def _describe(name: str, args: dict[str, Any]) -> str | None:
    if name == "VoteCast":
        return f"You voted {'yes' if args['support'] else 'no'} with {int(args['weight']):,} shares."
    if name == "ProposalFinalized":
        if args["expired"]:
            return f"Proposal {args['proposal_id']} expired unevaluated; its bond is refunded."
        return f"Proposal {args['proposal_id']} is {'accepted' if args['accepted'] else 'rejected'}."
    if name == "DatasetCreated":
        return f"Dataset {args['dataset_id']} created."
    if name == "ProposalCommitted":
        return "Proposal committed; reveal it next."
    if name == "RefundWithdrawn":
        return f"Claimed {eth(int(args['amount']))} of refunded bonds."
    if name == "ProposalCreated":
        return f"Proposal {args['proposal_id']} submitted: {plural(int(args['item_count']), 'item')}."
    if name == "RevenueWithdrawn":
        return f"Withdrew {eth(int(args['amount']))} from dataset {args['dataset_id']}."
    if name == "ChannelOpened":
        return f"Channel {args['channel_id']} opened with {eth(int(args['deposit']))}."
    if name == "ChannelClosing":
        return f"Channel {args['channel_id']} is closing; settle it after its challenge period."
    if name == "ChannelSettled":
        return f"Channel {args['channel_id']} settled: {eth(int(args['refund']))} refunded."
    return None


def confirm(state: WebState, sender: str, tx_hash: str, timeout: float = RECEIPT_TIMEOUT_S) -> TxResultPublic:
    """Wait for the receipt of a transaction ``sender`` sent to the market, then sync the index."""
    ledger = state.ws.ledger
    w3 = ledger.w3
    market = state.ws.market
    try:
        tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound as exc:
        raise NotFound(f"transaction on chain {ledger.chain_id}", tx_hash) from exc
    except (Web3Exception, OSError) as exc:
        raise ChainError(f"node error: {revert_reason(exc)}") from exc
    if str(tx["from"]).lower() != sender.lower():
        raise Forbidden("this transaction was not sent by the signed-in account")
    to = str(tx.get("to") or "").lower()
    models = state.ws.deployment.contracts.get("ModelMarket", {}).get("address")
    if to == market.address.lower():
        decoder = market.decode_receipt
    elif models and to == str(models).lower():
        decoder = state.ws.model_market.decode_receipt
    else:
        raise Forbidden("this transaction is not a call to the DataBright market")
    try:
        receipt = w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=timeout, poll_latency=0.05)  # type: ignore[arg-type]
    except TimeExhausted as exc:
        raise ChainError(f"no receipt for {tx_hash} within {timeout:.0f}s; the page updates once it is mined") from exc
    except (Web3Exception, OSError) as exc:
        raise ChainError(f"node error: {revert_reason(exc)}") from exc
    if receipt["status"] != 1:
        raise TransactionError(f"the transaction reverted: {_replay_reason(state, tx, int(receipt['blockNumber']))}")
    state.refresh()
    events = decoder(receipt)
    messages = [m for m in (_describe(e.name, e.args) for e in events) if m]
    created = [int(e.args["proposal_id"]) for e in events if e.name == "ProposalCreated"]
    datasets = [int(e.args["dataset_id"]) for e in events if e.name == "DatasetCreated"]
    url = f"/proposals/{created[0]}" if created else f"/datasets/{datasets[0]}" if datasets else None
    return TxResultPublic(tx_hash=receipt["transactionHash"].to_0x_hex(), block_number=int(receipt["blockNumber"]),
                          events=[e.name for e in events], message=" ".join(messages) or "Transaction confirmed.",
                          proposal_id=created[0] if created else None, url=url)


def _replay_reason(state: WebState, tx: Any, block: int) -> str:
    """Receipts carry no revert reason: replay the call on the state before its block."""
    call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
    try:
        state.ws.ledger.w3.eth.call(call, block_identifier=max(block - 1, 0))  # type: ignore[arg-type]
    except ContractLogicError as exc:
        return revert_reason(exc)
    except (Web3Exception, OSError):
        pass
    return "no reason given"
