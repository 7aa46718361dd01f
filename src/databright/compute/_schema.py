"""The coordinator's tables: jobs, rounds, tasks, leases, workers, exposure, nonces, slashes.

One database holds everything a coordinator must not forget across a crash
(``kill -9`` included): which results were accepted, which items each worker
has ever been sent and which request nonces are spent. SQLite is the default;
several coordinators share one PostgreSQL database. Wei amounts are stored as
decimal strings (uint256 does not fit a BIGINT).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

__all__ = ["assignments", "challenges", "commitments", "connect", "exposure", "job_items", "jobs", "metadata",
           "nonces", "pieces", "pipelines", "rounds", "slashes", "stages", "tasks", "workers"]

metadata = MetaData()

jobs = Table(
    "compute_jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("dataset_id", Integer, nullable=False),
    Column("spec", Text, nullable=False),
    Column("rounds", Integer, nullable=False),
    Column("local_steps", Integer, nullable=False),
    Column("redundancy", Integer, nullable=False),
    Column("max_exposure_bps", Integer, nullable=False),
    Column("cap", Integer, nullable=False),  # items one worker may ever see of this dataset
    Column("budget", String(80), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("validation", Text),  # manifest CID of the validation split, if any
    Column("settings", Text),  # JobSettings as canonical JSON: verification, split, snapshots
    Column("round", Integer, nullable=False),
    # running -> done (report written, settlement due) -> settled (complete_job mined)
    Column("status", String(16), nullable=False),
    Column("checkpoint_cid", Text),
    Column("checkpoint_sha256", String(64)),
    Column("report_cid", Text),
    Column("score", Float),
    Column("settle_tx", Text),
)

job_items = Table(
    "compute_job_items", metadata,
    Column("job_id", Integer, ForeignKey("compute_jobs.id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("cid", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("shard", Integer, nullable=False, index=True),
)

rounds = Table(
    "compute_rounds", metadata,
    Column("job_id", Integer, ForeignKey("compute_jobs.id"), primary_key=True),
    Column("round", Integer, primary_key=True, autoincrement=False),
    Column("checkpoint_cid", Text, nullable=False),
    Column("checkpoint_sha256", String(64), nullable=False),
)

tasks = Table(
    "compute_tasks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("compute_jobs.id"), nullable=False),
    Column("round", Integer, nullable=False),
    Column("idx", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("needed", Integer, nullable=False),  # results wanted before a verdict
    Column("status", String(16), nullable=False),  # open | accepted
    Column("result_cid", Text),
    Column("result_sha256", String(64)),
    UniqueConstraint("job_id", "round", "idx"),
)

workers = Table(
    "compute_workers", metadata,
    Column("address", String(42), primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("fingerprint_digest", String(64), nullable=False),
    Column("min_fee", String(80), nullable=False),
    Column("grp", Integer, nullable=False),  # redundancy group, assigned in registration order
    Column("registered_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("banned", Boolean, nullable=False, default=False),
)

assignments = Table(
    "compute_assignments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, ForeignKey("compute_tasks.id"), nullable=False, index=True),
    Column("worker", String(42), ForeignKey("compute_workers.address"), nullable=False, index=True),
    Column("grp", Integer, nullable=False),
    Column("fingerprint_digest", String(64), nullable=False),
    # leased -> submitted (then agree | odd) or expired
    Column("status", String(16), nullable=False),
    Column("verdict", String(16)),
    Column("leased_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("claim_evidence", Text, nullable=False),
    Column("result_cid", Text),
    Column("result_sha256", String(64)),
    Column("result_evidence", Text),
    Column("compute_s", Float),
)

exposure = Table(
    "compute_exposure", metadata,
    Column("dataset_id", Integer, primary_key=True, autoincrement=False),
    Column("worker", String(42), primary_key=True),
    Column("item_cid", String(120), primary_key=True),
    Column("job_id", Integer, nullable=False),
    Column("at", Float, nullable=False),
)

nonces = Table(
    "compute_nonces", metadata,
    Column("worker", String(42), primary_key=True),
    Column("nonce", String(80), primary_key=True),
    Column("expiry", Integer, nullable=False, index=True),
)

slashes = Table(
    "compute_slashes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("compute_jobs.id"), nullable=False, index=True),
    Column("worker", String(42), nullable=False),
    Column("assignment_id", Integer, ForeignKey("compute_assignments.id"), nullable=False, unique=True),
    Column("reason", Text, nullable=False),
    Column("evidence_cid", Text, nullable=False),
)

# Optimistic verification (docs/compute.md): a worker's signed commitment per lease, and the
# snapshots the coordinator asked it for. A coordinator killed mid-check resumes from these.
commitments = Table(
    "compute_commitments", metadata,
    Column("assignment_id", Integer, ForeignKey("compute_assignments.id"), primary_key=True, autoincrement=False),
    Column("commitment", Text, nullable=False),  # Commitment.evidence() as canonical JSON, signature included
    # committed (result not yet in) -> challenging -> accepted | rejected
    Column("status", String(16), nullable=False),
    Column("secret", String(64)),  # the sampling secret, drawn after the commitment was signed
    Column("samples", Text),  # JSON list of the sampled segments
    Column("reason", Text),
    Column("replayed_steps", Integer),
    Column("bad_segment", Integer),
)

challenges = Table(
    "compute_challenges", metadata,
    Column("assignment_id", Integer, ForeignKey("compute_assignments.id"), primary_key=True),
    Column("leaf", Integer, primary_key=True, autoincrement=False),
    Column("asked_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("snapshot_cid", Text),  # null while the challenge is open
    Column("proof", Text),  # the Merkle proof served with it, as JSON
    Column("answer_evidence", Text),  # the worker's signed answer request
)


# -- split jobs (:mod:`._split_jobs`): a task runs as pipelines of stage leases ----------

pieces = Table(
    "compute_pieces", metadata,  # a split job's round checkpoint, cut into one state per stage
    Column("job_id", Integer, ForeignKey("compute_jobs.id"), primary_key=True),
    Column("round", Integer, primary_key=True, autoincrement=False),
    Column("stage", Integer, primary_key=True, autoincrement=False),
    Column("checkpoint_cid", Text, nullable=False),
    Column("checkpoint_sha256", String(64), nullable=False),
)

pipelines = Table(
    "compute_pipelines", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, ForeignKey("compute_tasks.id"), nullable=False, index=True),
    Column("grp", Integer, nullable=False),  # every stage of one replica comes from one redundancy group
    # forming -> running (all stages claimed and listening) -> submitted (pieces joined);
    # or lapsed (a stage never came or went silent) or failed (the stage channel broke)
    Column("status", String(16), nullable=False),
    Column("form_by", Float, nullable=False),
    Column("result_cid", Text),
    Column("result_sha256", String(64)),
    Column("failure", Text),
)

stages = Table(
    "compute_stages", metadata,  # which stage of which pipeline a lease holds
    Column("assignment_id", Integer, ForeignKey("compute_assignments.id"), primary_key=True),
    Column("pipeline_id", Integer, ForeignKey("compute_pipelines.id"), nullable=False, index=True),
    Column("stage", Integer, nullable=False),
    Column("listen", Text),  # host:port where this stage accepts its upstream neighbour
    UniqueConstraint("pipeline_id", "stage"),
)


def connect(url: str) -> Engine:
    """An engine with the schema created; SQLite write transactions take the lock up front."""
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # let the begin hook below issue BEGIN itself
            dbapi.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL sync survives a killed process (kill -9) intact; only power loss
            # can drop the last commits, and the claims it would drop are re-leased.
            dbapi.execute("PRAGMA synchronous=NORMAL")
            dbapi.execute("PRAGMA busy_timeout=30000")
            dbapi.execute("PRAGMA foreign_keys=ON")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Every transaction may write (claims, nonces): take the write lock at BEGIN so two
            # processes never both read a free slot and then both fill it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    metadata.create_all(engine)
    return engine
