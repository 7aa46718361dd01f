"""The model market: payment channels and vouchers, the prediction server and
its client, and training a model to register.

A user opens a channel to a model with one deposit, then signs a cumulative
:class:`Voucher` per request; the model's server (:func:`create_app`) checks
it (:class:`PaymentGate`), keeps the latest one durably (:class:`VoucherStore`)
and redeems it on-chain (:class:`Redeemer`), which pays the owner and the
dataset's royalty at once. :class:`PredictionClient` is the buyer's side;
:func:`train_model` trains a model on a dataset to register. The contract's
client is :class:`databright.chain.ModelMarket`; docs/models.md has the rules.
"""

from __future__ import annotations

from databright.models._client import PredictionClient, PredictionResult, SignedRecord
from databright.models._paths import announce_path, announced_url, signed_record_path
from databright.models._payments import PaymentGate, Redeemer
from databright.models._server import create_app
from databright.models._served import Prediction, ServedModel
from databright.models._training import (
    TrainedModel,
    load_training_report,
    score_checkpoint,
    train_model,
    verify_training,
)
from databright.models._verify import VERIFICATION_KIND, ModelVerification, verify_model
from databright.models._voucher import DOMAIN_NAME, DOMAIN_VERSION, Voucher, VoucherDomain
from databright.models._voucher_store import PaymentRequired, StoredVoucher, VoucherStore

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "ModelVerification",
    "PaymentGate",
    "PaymentRequired",
    "Prediction",
    "PredictionClient",
    "PredictionResult",
    "Redeemer",
    "ServedModel",
    "SignedRecord",
    "StoredVoucher",
    "TrainedModel",
    "VERIFICATION_KIND",
    "Voucher",
    "VoucherDomain",
    "VoucherStore",
    "announce_path",
    "announced_url",
    "create_app",
    "load_training_report",
    "score_checkpoint",
    "signed_record_path",
    "train_model",
    "verify_model",
    "verify_training",
]

