"""The coordinator's serving tables: serving jobs, prediction requests, workers' answers, slashes.

They sit in the coordinator's database beside the training tables (and share
its workers and spent nonces) but in a metadata of their own, so serving
never changes a training table. Wei amounts are decimal strings. Requests and
answers are kept in the database, not the blob store, so answering costs no
file fsyncs; they become blobs only as a slash's evidence.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint

__all__ = ["serving_answers", "serving_jobs", "serving_metadata", "serving_requests", "serving_slashes"]

serving_metadata = MetaData()

serving_jobs = Table(
    "serving_jobs", serving_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # the ComputeMarket job id
    Column("model_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("owner", String(42), nullable=False),  # the only key that may send requests
    Column("spec", Text, nullable=False),
    Column("checkpoint_cid", Text, nullable=False),
    Column("checkpoint_sha256", String(64), nullable=False),
    Column("redundancy", Integer, nullable=False),
    Column("fee", String(80), nullable=False),  # wei per prediction
    Column("budget", String(80), nullable=False),
    Column("spot_check", Float, nullable=False),  # share of redundancy-1 requests the coordinator re-runs
    # serving -> settled (complete_job mined)
    Column("status", String(16), nullable=False),
    Column("report_cid", Text),
    Column("settle_tx", Text),
)

serving_requests = Table(
    "serving_requests", serving_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("serving_jobs.id"), nullable=False, index=True),
    Column("input", LargeBinary, nullable=False),  # the items, framed
    Column("input_sha256", String(64), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("needed", Integer, nullable=False),  # answers wanted before a verdict
    Column("status", String(16), nullable=False),  # open | answered
    Column("answer_sha256", String(64)),
    Column("answer", LargeBinary),  # the accepted answer's canonical JSON
    Column("answered_by", String(16)),  # workers | coordinator
    Column("created_at", Float, nullable=False),
    Column("answered_at", Float),
)

serving_answers = Table(
    "serving_answers", serving_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("serving_requests.id"), nullable=False, index=True),
    Column("worker", String(42), nullable=False, index=True),
    Column("grp", Integer, nullable=False),
    Column("fingerprint_digest", String(64), nullable=False),
    # leased -> answered (then agree | odd) or expired
    Column("status", String(16), nullable=False),
    Column("verdict", String(16)),
    Column("leased_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("answer_sha256", String(64)),
    Column("answer", LargeBinary),  # the body the worker signed
    Column("evidence", Text),  # the worker's signed request that carried the answer
    UniqueConstraint("request_id", "worker"),
)

serving_slashes = Table(
    "serving_slashes", serving_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("serving_jobs.id"), nullable=False, index=True),
    Column("worker", String(42), nullable=False),
    Column("answer_id", Integer, ForeignKey("serving_answers.id"), nullable=False, unique=True),
    Column("reason", Text, nullable=False),
    Column("evidence_cid", Text, nullable=False),
)
