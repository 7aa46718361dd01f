"""Buying predictions: the client side of the payment channels.

:class:`PredictionClient` asks a prediction server for a model's price and
voucher domain, picks (or opens) one of the user's channels to that model,
signs a cumulative voucher for the request and sends it with the items.

What the user has signed is kept in a :class:`SignedRecord` (a small JSON file
per chain): the high-water mark of each channel's vouchers, written *before*
the voucher leaves the process. The next voucher always builds on it, so a
lost response costs the user at most that one request, and a server can never
talk the client into re-signing money it already holds.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from databright.chain.modelmarket import Channel, ModelMarket
from databright.errors import AccountError, InputError, PaymentError
from databright.models._voucher import VoucherDomain
from databright.models._voucher_store import PaymentRequired

__all__ = ["PredictionClient", "PredictionResult", "SignedRecord"]

VOUCHER_HEADER = "X-Payment-Voucher"


class SignedRecord:
    """The highest cumulative amount signed per (contract, channel), on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise InputError(f"corrupt voucher record {self.path}: {exc}") from exc
        return {str(k): int(v) for k, v in data.items()}

    def get(self, contract: str, channel: int) -> int:
        with self._lock:
            return self._load().get(f"{contract}:{channel}", 0)

    def raise_to(self, contract: str, channel: int, amount: int) -> None:
        with self._lock:
            data = self._load()
            key = f"{contract}:{channel}"
            if amount <= data.get(key, 0):
                return
            data[key] = amount
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("w") as fh:
                json.dump(data, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.path)


@dataclass(frozen=True)
class PredictionResult:
    model_id: int
    version: int
    predictions: list[dict[str, Any]]
    channel: int | None
    paid: int
    total: int


class PredictionClient:
    def __init__(self, url: str, market: ModelMarket, account: LocalAccount | None, record: SignedRecord, *,
                 http: httpx.Client | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.market = market
        self.account = account
        self.record = record
        self.domain = VoucherDomain(market.ledger.chain_id, market.address)
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _own(self) -> LocalAccount:
        """The key that signs; a client made without one (``account=None``) only reads and sends."""
        if self.account is None:
            raise AccountError("this prediction client holds no key: it can only send vouchers signed elsewhere")
        return self.account

    def info(self, model_id: int) -> dict[str, Any]:
        response = self._request("GET", f"/v1/models/{model_id}")
        info: dict[str, Any] = response.json()
        if info.get("payments") and (info.get("chain_id"), info.get("contract")) != (
                self.domain.chain_id, self.domain.contract):
            raise PaymentError(
                f"the server takes vouchers for {info.get('contract')} on chain {info.get('chain_id')}, "
                f"not this ModelMarket ({self.domain.contract} on chain {self.domain.chain_id})")
        return info

    def channels(self, model_id: int) -> list[Channel]:
        """The user's open channels to ``model_id``."""
        return [c for c in self.market.channels_of(self._own().address)
                if c.model_id == model_id and c.state == "open"]

    def spendable(self, channel: Channel) -> int:
        return channel.deposit - max(channel.redeemed, self.record.get(self.domain.contract, channel.channel_id))

    def choose_channel(self, model_id: int, cost: int, *, deposit: int | None = None) -> Channel:
        """An open channel that can pay ``cost``, opening one with ``deposit`` if none can."""
        usable = [c for c in self.channels(model_id) if self.spendable(c) >= cost]
        if usable:
            return max(usable, key=self.spendable)
        if deposit is None:
            raise PaymentRequired(
                f"no open channel to model {model_id} can pay {cost} wei; open one (pass a deposit)", owed=cost)
        if deposit < cost:
            raise InputError(f"a deposit of {deposit} wei cannot pay this request's {cost} wei")
        return self.market.channel(self.market.open_channel(self._own(), model_id, deposit))

    def predict(self, model_id: int, *, files: Sequence[Path | tuple[str, bytes]] = (),
                rows: Sequence[dict[str, Any]] = (), channel: int | None = None,
                deposit: int | None = None) -> PredictionResult:
        """Predict ``files`` (image paths, or names with their bytes) or ``rows`` (table rows),
        paying through a channel."""
        if bool(files) == bool(rows):
            raise InputError("give image files or table rows to predict, not both or neither")
        count = len(files) or len(rows)
        info = self.info(model_id)
        cost = int(info["price"]) * count
        header: dict[str, str] = {}
        chosen: Channel | None = None
        total = 0
        if info["payments"] and cost > 0:
            if channel is not None:
                chosen = self.market.channel(channel)
                if chosen.model_id != model_id or chosen.state != "open":
                    raise InputError(f"channel {channel} is not an open channel to model {model_id}")
                if chosen.user != self._own().address:
                    raise InputError(f"channel {channel} belongs to {chosen.user}, not {self._own().address}")
                if self.spendable(chosen) < cost:
                    raise PaymentRequired(
                        f"channel {channel} has {self.spendable(chosen)} wei left, this request costs {cost}; "
                        "top it up", channel=channel, owed=cost)
            else:
                chosen = self.choose_channel(model_id, cost, deposit=deposit)
            signed = max(chosen.redeemed, self.record.get(self.domain.contract, chosen.channel_id))
            total = signed + cost
            self.record.raise_to(self.domain.contract, chosen.channel_id, total)
            header[VOUCHER_HEADER] = self.domain.sign(self._own(), chosen.channel_id, total).to_header()
        body = self.send(model_id, files=files, rows=rows, voucher=header.get(VOUCHER_HEADER))
        return PredictionResult(model_id, int(body["version"]), list(body["predictions"]),
                                chosen.channel_id if chosen else None, cost if chosen else 0, total)

    def send(self, model_id: int, *, files: Sequence[Path | tuple[str, bytes]] = (),
             rows: Sequence[dict[str, Any]] = (), voucher: str | None = None) -> dict[str, Any]:
        """Post one prediction request with a voucher already signed; the server's answer."""
        header = {VOUCHER_HEADER: voucher} if voucher else {}
        if files:
            try:
                parts = [("files", (p.name, p.read_bytes(), "application/octet-stream") if isinstance(p, Path)
                          else (p[0], p[1], "application/octet-stream")) for p in files]
            except OSError as exc:
                raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from exc
            response = self._request("POST", f"/v1/models/{model_id}/predict", files=parts, headers=header)
        else:
            response = self._request("POST", f"/v1/models/{model_id}/predict", json={"rows": list(rows)},
                                     headers=header)
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PaymentError(f"the prediction server at {self.url} answered something other than JSON") from exc
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise PaymentError(f"cannot reach the prediction server at {self.url}: {exc}") from exc
        if response.status_code == 402:
            body = response.json()
            raise PaymentRequired(f"payment required: {body.get('detail')}", channel=body.get("channel"),
                                  owed=body.get("owed"), previous=body.get("previous"))
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:200]
            raise InputError(f"the prediction server refused the request ({response.status_code}): {detail}")
        return response
