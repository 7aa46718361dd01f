"""The model page's "try it": predictions bought through a payment channel, from the browser.

The browser only ever talks to the dashboard (its Content-Security-Policy has
``connect-src 'self'``), so the dashboard forwards each request to the model's
prediction server: the one named with ``serve --model-server ID=URL``, or the
one a ``databright model serve`` of this home announces. A visitor never
chooses where the dashboard connects.

A local-mode session pays with its unlocked keystore key through
:class:`databright.models.PredictionClient`, exactly as ``databright predict``
does. A wallet session gets a *quote* first — the channel to pay through (or the
``open_channel`` transaction its wallet sends when none can pay) and the
EIP-712 voucher to sign with ``eth_signTypedData_v4`` — then posts the items with
the signed voucher. The dashboard refuses a voucher that is not the signed-in
user's own, for a channel that is not theirs, or that does not pay exactly what
the quote asked, before anything reaches the prediction server.

Both paths raise the home's signed record (the high-water mark of each
channel's vouchers) before a voucher leaves the process, so the next voucher
builds on it and no money is signed twice.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from databright.chain.modelmarket import Channel
from databright.errors import InputError, NotFound, PaymentError
from databright.index import ChannelRow
from databright.ml import ModelSpec
from databright.models import PredictionClient, PredictionResult, SignedRecord, Voucher, VoucherDomain
from databright.models import announced_url, signed_record_path
from databright.web._registry import ModelView, channels
from databright.web._state import WebState
from databright.web._wallet import prepare
from databright.web.deps import Forbidden

__all__ = ["MAX_TRY_ITEMS", "TryItems", "pay_local", "pay_wallet", "quote", "read_rows", "signed", "spec_of"]

MAX_TRY_ITEMS = 16
_SPECS: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class TryItems:
    """What a visitor asks to predict: image files (name and bytes) or table rows."""

    files: list[tuple[str, bytes]]
    rows: list[dict[str, Any]]

    @property
    def count(self) -> int:
        return len(self.files) or len(self.rows)

    def check(self) -> None:
        if not self.count:
            raise InputError("nothing to predict: choose an image or type a table row")
        if self.count > MAX_TRY_ITEMS:
            raise InputError(f"at most {MAX_TRY_ITEMS} items at a time here, got {self.count}")


def spec_of(state: WebState, model: ModelView) -> ModelSpec:
    """The latest version's spec, from the blob store (specs never change, so cached by CID)."""
    cid = model.latest.spec_cid
    if cid not in _SPECS:
        _SPECS[cid] = ModelSpec.from_json(state.ws.store.get(cid))
    return _SPECS[cid]


def read_rows(text: str, features: tuple[str, ...]) -> list[dict[str, Any]]:
    """Table rows typed as CSV: the header line names the feature columns (any order), one row per line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        raise InputError("type a header line naming the columns, then at least one row of values")
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = [name.strip() for name in next(reader)]
    unknown = sorted(set(header) - set(features))
    if unknown:
        raise InputError(f"unknown column {unknown[0]!r}; this model reads {', '.join(features)}")
    rows = []
    for number, values in enumerate(reader, start=2):
        if len(values) != len(header):
            raise InputError(f"line {number} has {len(values)} values for {len(header)} columns")
        row: dict[str, Any] = {}
        for name, value in zip(header, values, strict=True):
            try:
                row[name] = float(value)
            except ValueError:
                raise InputError(f"line {number}, column {name!r}: {value.strip()!r} is not a number") from None
        rows.append(row)
    return rows


def _server(state: WebState, model_id: int) -> str:
    url = state.model_servers.get(model_id) or announced_url(state.ws.home.root, state.chain_id, model_id)
    if url is None:
        raise PaymentError(f"no prediction server for model {model_id} is running for this dashboard; its owner "
                           f"starts one with 'databright model serve {model_id}'")
    return url


def _record(state: WebState) -> SignedRecord:
    return SignedRecord(signed_record_path(state.ws.home.root, state.chain_id))


def signed(state: WebState, channel: Channel | ChannelRow) -> int:
    """What the channel's vouchers have signed away so far, as far as this home knows: spent money."""
    return max(channel.redeemed, _record(state).get(state.ws.model_market.address, channel.channel_id))


def _client(state: WebState, model_id: int, account: LocalAccount | None, http: httpx.Client) -> PredictionClient:
    # A wallet session has no key here: its client only reads (info) and sends signed vouchers.
    return PredictionClient(_server(state, model_id), state.ws.model_market, account, _record(state), http=http)


@dataclass(frozen=True)
class Paid:
    """A prediction as the page shows it: the answers and what they cost."""

    model_id: int
    version: int
    names: list[str]
    predictions: list[dict[str, Any]]
    channel: int | None
    paid: int
    signed: int
    remaining: int | None

    def public(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "version": self.version, "channel": self.channel, "paid_wei": self.paid,
                "signed_wei": self.signed, "remaining_wei": self.remaining,
                "predictions": [{"input": n, **p} for n, p in zip(self.names, self.predictions, strict=True)]}


def _names(items: TryItems) -> list[str]:
    return [name for name, _ in items.files] or [f"row {i + 1}" for i in range(len(items.rows))]


def _remaining(state: WebState, channel: int | None, signed: int) -> int | None:
    return None if channel is None else state.ws.model_market.channel(channel).deposit - signed


def pay_local(state: WebState, signer: LocalAccount, model: ModelView, items: TryItems, deposit: int | None,
              http: httpx.Client) -> Paid:
    """Predict ``items`` paying with a local session's key; opens a channel with ``deposit`` if none can pay."""
    items.check()
    client = _client(state, model.model_id, signer, http)
    # Under the write lock: opening a channel is a transaction, and two vouchers of one
    # channel must not be built on the same high-water mark.
    result: PredictionResult = state.write(lambda: client.predict(
        model.model_id, files=items.files, rows=items.rows, deposit=deposit))
    return Paid(model.model_id, result.version, _names(items), result.predictions, result.channel, result.paid,
                result.total, _remaining(state, result.channel, result.total))


def _usable(state: WebState, user: str, model: ModelView, cost: int) -> tuple[Channel, int] | None:
    """The user's open channel to the model with the most left after ``cost``, and its next voucher's base."""
    best: tuple[Channel, int] | None = None
    for entry in channels(state, user, model.model_id):
        if entry.state != "open":
            continue
        channel = state.ws.model_market.channel(entry.channel_id)  # the chain's word, not the book's
        base = signed(state, channel)
        if channel.state == "open" and channel.deposit - base >= cost and (
                best is None or channel.deposit - base > best[0].deposit - best[1]):
            best = (channel, base)
    return best


def quote(state: WebState, user: str, model: ModelView, count: int, deposit: int | None,
          http: httpx.Client) -> dict[str, Any]:
    """What a wallet signs (or sends first) to pay for ``count`` items."""
    if not 1 <= count <= MAX_TRY_ITEMS:
        raise InputError(f"between 1 and {MAX_TRY_ITEMS} items at a time here")
    info = _client(state, model.model_id, None, http).info(model.model_id)
    cost = int(info["price"]) * count
    out: dict[str, Any] = {"model_id": model.model_id, "price_wei": int(info["price"]), "items": count,
                           "cost_wei": cost, "payments": bool(info["payments"]), "channel": None,
                           "amount_wei": None, "typed_data": None, "voucher_prefix": None, "open_tx": None}
    if not info["payments"] or cost == 0:
        return out
    usable = _usable(state, user, model, cost)
    if usable is None:
        if deposit is None:
            raise PaymentError(f"no open channel of yours to model {model.model_id} can pay {cost} wei; "
                               "give a deposit to open one")
        if deposit < cost:
            raise InputError(f"a deposit of {deposit} wei cannot pay this request's {cost} wei")
        mm = state.ws.model_market
        out["open_tx"] = prepare(state, user, mm.contract.functions.open_channel(model.model_id), deposit).model_dump(
            by_alias=True)
        return out
    channel, base = usable
    typed = VoucherDomain(state.chain_id, state.ws.model_market.address).typed_data(channel.channel_id, base + cost)
    # Wei amounts pass 2**53: as decimal strings (which eth_signTypedData_v4 takes for uint256),
    # a page's JavaScript never rounds them.
    typed["message"] = {key: str(value) for key, value in typed["message"].items()}
    out.update(channel=channel.channel_id, amount_wei=base + cost, typed_data=typed,
               voucher_prefix=f"{channel.channel_id}:{base + cost}")
    return out


def pay_wallet(state: WebState, user: str, model: ModelView, items: TryItems, voucher_text: str,
               http: httpx.Client) -> Paid:
    """Forward ``items`` with a voucher the user's wallet signed, after checking it is theirs and pays the quote."""
    items.check()
    client = _client(state, model.model_id, None, http)
    info = client.info(model.model_id)
    cost = int(info["price"]) * items.count
    if not info["payments"] or cost == 0:
        return _forward(state, client, model, items, None, 0, 0)
    voucher = Voucher.from_header(voucher_text)
    mm = state.ws.model_market
    try:
        channel = mm.channel(voucher.channel)
    except NotFound as exc:
        raise InputError(str(exc)) from exc
    if channel.user.lower() != user.lower():
        raise Forbidden(f"channel {voucher.channel} is not yours: it belongs to {channel.user}")
    if channel.model_id != model.model_id:
        raise InputError(f"channel {voucher.channel} pays model {channel.model_id}, not model {model.model_id}")
    if channel.state != "open":
        raise InputError(f"channel {voucher.channel} is {channel.state}; open a new one")
    if VoucherDomain(state.chain_id, mm.address).signer(voucher).lower() != user.lower():
        raise Forbidden("the voucher is not signed by the signed-in account")
    with state.lock:
        record = _record(state)
        base = max(channel.redeemed, record.get(mm.address, channel.channel_id))
        if voucher.amount != base + cost:
            raise PaymentError(f"the voucher signs {voucher.amount} wei in total; this request needs exactly "
                               f"{base + cost} (ask for a new quote)")
        if voucher.amount > channel.deposit:
            raise PaymentError(f"channel {channel.channel_id} holds {channel.deposit} wei; top it up")
        record.raise_to(mm.address, channel.channel_id, voucher.amount)
    return _forward(state, client, model, items, voucher, cost, voucher.amount)


def _forward(state: WebState, client: PredictionClient, model: ModelView, items: TryItems,
             voucher: Voucher | None, cost: int, signed: int) -> Paid:
    body = client.send(model.model_id, files=items.files, rows=items.rows,
                       voucher=voucher.to_header() if voucher else None)
    channel = voucher.channel if voucher else None
    return Paid(model.model_id, int(body["version"]), _names(items), list(body["predictions"]), channel, cost, signed,
                _remaining(state, channel, signed))
