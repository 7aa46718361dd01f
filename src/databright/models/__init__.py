"""The model market: registry client, payment channels and vouchers, the
prediction server and its client, and training a model to register.

A user opens a channel to a model with one deposit, then signs a cumulative
:class:`Voucher` per request; the model's server keeps the latest voucher and
redeems it on-chain, which pays the owner and the dataset's royalty at once.
"""

from __future__ import annotations

from databright.models._voucher import DOMAIN_NAME, DOMAIN_VERSION, Voucher, VoucherDomain

__all__ = ["DOMAIN_NAME", "DOMAIN_VERSION", "Voucher", "VoucherDomain"]
