"""The off-chain index: a SQL mirror of DataMarket events.

SQLite under the home directory by default; any SQLAlchemy URL (PostgreSQL in
production) through ``DATABRIGHT_INDEX_URL``. The chain stays the source of
truth: the index can be dropped and rebuilt from events at any time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import time

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from databright.chain import DataMarket
from databright.errors import IndexError_, NotFound
from databright.index._models import (
    Base,
    CommentRow,
    CursorRow,
    DatasetRow,
    HolderRow,
    ItemRow,
    ProposalRow,
    RevenueRow,
    VoteRow,
)
from databright.index._sync import ItemRecord, Loaders, apply_events

__all__ = [
    "CommentRow",
    "DatasetRow",
    "HolderRow",
    "Index",
    "ItemRecord",
    "ItemRow",
    "Loaders",
    "ProposalRow",
    "RevenueRow",
    "VoteRow",
]

_BLOCK_RANGE = 5_000


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Index:
    """One index database bound to one DataMarket deployment."""

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise IndexError_(f"cannot open index {url}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def bind(self, chain_id: int, contract: str, start_block: int) -> None:
        """Tie this index to a deployment; refuse to mix two deployments."""
        with self._sessions.begin() as session:
            cursor = session.get(CursorRow, 1)
            if cursor is None:
                session.add(CursorRow(id=1, chain_id=chain_id, contract=contract, last_block=start_block - 1))
            elif (cursor.chain_id, cursor.contract.lower()) != (chain_id, contract.lower()):
                raise IndexError_(
                    f"the index mirrors {cursor.contract} on chain {cursor.chain_id}, "
                    f"not {contract} on chain {chain_id}; use another index URL"
                )

    def last_block(self) -> int:
        with self.session() as session:
            cursor = session.get(CursorRow, 1)
            return -1 if cursor is None else cursor.last_block

    def sync(self, market: DataMarket, loaders: Loaders, to_block: int | None = None) -> int:
        """Apply every event up to ``to_block`` (default: latest); returns the count."""
        head = market.ledger.block_number() if to_block is None else to_block
        applied = 0
        while True:
            with self._sessions.begin() as session:
                cursor = session.get(CursorRow, 1)
                if cursor is None:
                    raise IndexError_("the index is not bound to a deployment")
                start = cursor.last_block + 1
                if start > head:
                    return applied
                end = min(head, start + _BLOCK_RANGE - 1)
                applied += apply_events(session, market.events(start, end), loaders)
                cursor.last_block = end

    # -- queries -------------------------------------------------------------

    def datasets(self) -> list[DatasetRow]:
        with self.session() as session:
            return list(session.scalars(select(DatasetRow).order_by(DatasetRow.dataset_id)))

    def dataset(self, dataset_id: int) -> DatasetRow:
        with self.session() as session:
            row = session.get(DatasetRow, dataset_id)
            if row is None:
                known = session.scalars(select(DatasetRow.dataset_id)).all()
                raise NotFound("dataset", dataset_id, known)
            return row

    def proposals(self, dataset_id: int | None = None, status: str | None = None) -> list[ProposalRow]:
        query = select(ProposalRow).order_by(ProposalRow.proposal_id)
        if dataset_id is not None:
            query = query.where(ProposalRow.dataset_id == dataset_id)
        if status is not None:
            query = query.where(ProposalRow.status == status)
        with self.session() as session:
            return list(session.scalars(query))

    def proposal(self, proposal_id: int) -> ProposalRow:
        with self.session() as session:
            row = session.get(ProposalRow, proposal_id)
            if row is None:
                known = session.scalars(select(ProposalRow.proposal_id)).all()
                raise NotFound("proposal", proposal_id, known)
            return row

    def votes(self, proposal_id: int) -> list[VoteRow]:
        with self.session() as session:
            query = select(VoteRow).where(VoteRow.proposal_id == proposal_id).order_by(VoteRow.id)
            return list(session.scalars(query))

    def holders(self, dataset_id: int) -> list[HolderRow]:
        with self.session() as session:
            query = select(HolderRow).where(HolderRow.dataset_id == dataset_id)
            rows = [r for r in session.scalars(query) if r.balance > 0 or r.withdrawn > 0]
            return sorted(rows, key=lambda r: (-r.balance, r.holder))

    def holdings(self, holder: str) -> list[HolderRow]:
        with self.session() as session:
            query = select(HolderRow).where(func.lower(HolderRow.holder) == holder.lower())
            return [r for r in session.scalars(query) if r.balance > 0 or r.withdrawn > 0]

    def items(
        self, dataset_id: int, *, accepted: bool | None = True, proposal_id: int | None = None
    ) -> list[ItemRow]:
        query = select(ItemRow).where(ItemRow.dataset_id == dataset_id)
        if accepted is not None:
            query = query.where(ItemRow.accepted.is_(accepted))
        if proposal_id is not None:
            query = query.where(ItemRow.proposal_id == proposal_id)
        with self.session() as session:
            return list(session.scalars(query.order_by(ItemRow.proposal_id, ItemRow.position)))

    def accepted_cids(self, dataset_id: int, cids: list[str]) -> set[str]:
        """Which of ``cids`` are already accepted items of the dataset."""
        found: set[str] = set()
        with self.session() as session:
            for start in range(0, len(cids), 500):
                chunk = cids[start : start + 500]
                query = select(ItemRow.cid).where(
                    ItemRow.dataset_id == dataset_id, ItemRow.accepted.is_(True), ItemRow.cid.in_(chunk)
                )
                found.update(session.scalars(query))
        return found

    def revenue(self, dataset_id: int) -> list[RevenueRow]:
        with self.session() as session:
            query = select(RevenueRow).where(RevenueRow.dataset_id == dataset_id).order_by(RevenueRow.id)
            return list(session.scalars(query))

    # -- discussion threads (off-chain: the index owns them) --------------------

    def add_comment(self, proposal_id: int, author: str, body: str, message: str, signature: str) -> CommentRow:
        """Store a comment whose ``message`` the caller has checked ``author`` signed."""
        self.proposal(proposal_id)
        row = CommentRow(proposal_id=proposal_id, author=author, body=body, message=message,
                         signature=signature, created=time.time())
        with self._sessions.begin() as session:
            session.add(row)
        return row

    def comments(self, proposal_id: int) -> list[CommentRow]:
        with self.session() as session:
            query = select(CommentRow).where(CommentRow.proposal_id == proposal_id).order_by(CommentRow.id)
            return list(session.scalars(query))
