"""The off-chain index: a SQL mirror of DataMarket and ModelMarket events.

SQLite under the home directory by default; any SQLAlchemy URL (PostgreSQL in
production) through ``DATABRIGHT_INDEX_URL``. The chain stays the source of
truth: the index can be dropped and rebuilt from events at any time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, delete, event, func, inspect, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from databright.errors import IndexError_, InputError, NotFound
from databright.index._models import (
    Base,
    CommentRow,
    CursorRow,
    DatasetRow,
    HolderRow,
    ItemRow,
    LabelCountRow,
    ProposalRow,
    RevenueRow,
    VoteRow,
)
from databright.index._pages import MAX_LIMIT, CursorError, Page, keyset_page, sequence_page
from databright.index._model_queries import (
    REVENUE_SOURCES,
    ContributorImpact,
    ModelImpact,
    best_verified,
    channels_of,
    contributor_impact,
    dataset_impact,
    get_model,
    list_models,
    model_income,
    model_prices,
    model_versions,
    redemptions,
    revenue_by_source,
)
from databright.index._model_rows import ChannelRow, ModelIncomeRow, ModelRow, ModelVersionRow, PriceRow, RedemptionRow
from databright.index._model_sync import PAYMENT_SOURCES, PaymentSource, TaggedEvent, apply_all
from databright.index._sync import ItemRecord, Loaders, apply_metadata, attach_manifest

if TYPE_CHECKING:  # the chain's clients import web3: a read that finds the index current never needs them
    from databright.chain import ChainHead, DataMarket
    from databright.chain.computemarket import ComputeMarket
    from databright.chain.modelmarket import ModelMarket

__all__ = [
    "ChannelRow",
    "CommentRow",
    "ContributorImpact",
    "CursorError",
    "DatasetRow",
    "HolderRow",
    "Index",
    "ItemRecord",
    "ItemRow",
    "Loaders",
    "MAX_LIMIT",
    "ModelImpact",
    "ModelIncomeRow",
    "ModelRow",
    "ModelVersionRow",
    "PAYMENT_SOURCES",
    "Page",
    "PaymentSource",
    "PriceRow",
    "ProposalRow",
    "REVENUE_SOURCES",
    "RedemptionRow",
    "RevenueRow",
    "VoteRow",
    "best_verified",
    "channels_of",
    "contributor_impact",
    "dataset_impact",
    "get_model",
    "list_models",
    "model_income",
    "model_prices",
    "model_versions",
    "redemptions",
    "revenue_by_source",
    "sequence_page",
]

_T = TypeVar("_T")

_BLOCK_RANGE = 5_000
_ATTEMPTS = 50
_RETRY_SLEEP = 0.05


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


@contextmanager
def _mapped(action: str) -> Iterator[None]:
    """Turn a database failure into IndexError_ with a one-line reason."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise IndexError_(f"index {action} failed: {_one_line(exc)}") from exc


def _on_chain(cursor: CursorRow, chain: ChainHead) -> bool:
    """Whether the last block the index applied is still the chain's block."""
    if cursor.last_hash is None or cursor.start_block is None:
        return False  # an index file from before these columns
    if cursor.last_block < cursor.start_block:
        return True
    return chain.block_hash(cursor.last_block) == cursor.last_hash


def _clear(session: Session, *, keep_cursor: bool = False) -> None:
    """Forget everything derived from the chain; signed comments are user data and stay."""
    keep = {CommentRow.__tablename__} | ({CursorRow.__tablename__} if keep_cursor else set())
    for table in reversed(Base.metadata.sorted_tables):
        if table.name not in keep:
            session.execute(delete(table))
    session.expunge_all()


class _Claimed(Exception):
    """Another sync moved the cursor first: re-read it."""


class Index:
    """One index database bound to one DataMarket deployment."""

    def __init__(self, url: str) -> None:
        try:
            self.engine: Engine = create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            grown = self._missing_tables()
            Base.metadata.create_all(self.engine)
            grown |= self._add_missing_columns()
            self._add_missing_indexes()
            if grown:
                self._forget_deployment()
        except SQLAlchemyError as exc:
            raise IndexError_(f"cannot open index {url}: {_one_line(exc)}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _add_missing_indexes(self) -> None:
        """Create the indexes an older index file lacks (create_all only indexes the tables it creates)."""
        for table in Base.metadata.sorted_tables:
            have = {i["name"] for i in inspect(self.engine).get_indexes(table.name)}
            for table_index in table.indexes:
                if table_index.name in have:
                    continue
                try:
                    table_index.create(self.engine)
                except SQLAlchemyError:
                    # Another process may have created it meanwhile.
                    if table_index.name not in {i["name"] for i in inspect(self.engine).get_indexes(table.name)}:
                        raise

    def _missing_tables(self) -> bool:
        have = set(inspect(self.engine).get_table_names())
        return CursorRow.__tablename__ in have and any(t not in have for t in Base.metadata.tables)

    def _forget_deployment(self) -> None:
        """Make the next ``bind`` rebuild the index: rows written before the schema grew lack its new
        columns, tables and counters, which only replaying the events fills in."""
        with self.engine.begin() as conn:
            conn.execute(update(CursorRow).values(deploy_tx=None))

    def _add_missing_columns(self) -> bool:
        """Give an index file written by an older version the current columns; True if any was added.

        New columns arrive NULL; a NULL deployment in the cursor makes ``bind``
        rebuild the whole index, so no row keeps a wrong default.
        """
        added = False
        existing = inspect(self.engine)
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                kind = column.type.compile(dialect=self.engine.dialect)
                added = True
                try:
                    with self.engine.begin() as conn:
                        conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
                except SQLAlchemyError:
                    # Another process may have added it meanwhile.
                    if column.name not in {c["name"] for c in inspect(self.engine).get_columns(table.name)}:
                        raise
        return added

    @contextmanager
    def session(self) -> Iterator[Session]:
        with _mapped("read"), self._sessions() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def bind(self, chain_id: int, contract: str, start_block: int, *, deploy_tx: str = "",
             ledger: ChainHead | None = None, model_market: str | None = None) -> None:
        """Tie this index to a deployment; refuse to mix two deployments.

        Chain id and address survive a chain reset and a deterministic redeploy,
        so the index also records the deployment transaction, the genesis block
        and the hash of the last block it applied. When one differs from the
        chain (``ledger``), the index is a stale cache: every table is cleared
        and the next sync rebuilds it. So it is when the ModelMarket mirrored
        with it (``model_market``) changes.
        """
        genesis = "" if ledger is None else ledger.block_hash(0) or ""
        deployment = (chain_id, contract, start_block, deploy_tx, genesis, model_market)
        for attempt in range(2):
            try:
                self._write("bind", lambda s: self._bind(s, deployment, ledger))
                return
            except IndexError_ as exc:
                # Two first binds insert the cursor row at once: the loser re-reads it.
                if attempt or not isinstance(exc.__cause__, IntegrityError):
                    raise

    @staticmethod
    def _bind(session: Session, deployment: tuple[int, str, int, str, str, str | None],
              ledger: ChainHead | None) -> None:
        chain_id, contract, start_block, deploy_tx, genesis, model_market = deployment
        cursor = session.get(CursorRow, 1, with_for_update=True)
        if cursor is not None:
            if (cursor.chain_id, cursor.contract.lower()) != (chain_id, contract.lower()):
                raise IndexError_(
                    f"the index mirrors {cursor.contract} on chain {cursor.chain_id}, "
                    f"not {contract} on chain {chain_id}; use another index URL"
                )
            same = (cursor.deploy_tx, cursor.genesis_hash, cursor.start_block, (cursor.model_market or "").lower()) == (
                deploy_tx, genesis, start_block, (model_market or "").lower())
            if same and (ledger is None or _on_chain(cursor, ledger)):
                return
        _clear(session)
        session.add(
            CursorRow(
                id=1, chain_id=chain_id, contract=contract, start_block=start_block, last_block=start_block - 1,
                last_hash="", deploy_tx=deploy_tx, genesis_hash=genesis, model_market=model_market,
            )
        )

    def last_block(self) -> int:
        with self.session() as session:
            cursor = session.get(CursorRow, 1)
            return -1 if cursor is None else cursor.last_block

    def sync(self, market: DataMarket, loaders: Loaders, to_block: int | None = None, *,
             models: ModelMarket | None = None, compute: ComputeMarket | None = None) -> int:
        """Apply every event up to ``to_block`` (default: latest); returns the count.

        ``models`` is the ModelMarket bound with the index (``bind``'s
        ``model_market``): its events are merged with DataMarket's in chain order,
        and so are ``compute``'s (a ComputeMarket: its jobs' training fees).

        Also retries the manifests and dataset metadata that were unreachable
        when their events were applied.
        """
        head = market.ledger.block_number() if to_block is None else to_block
        applied = 0
        while True:
            with self.session() as session:
                cursor = session.get(CursorRow, 1)
                if cursor is None:
                    raise IndexError_("the index is not bound to a deployment")
                seen = (cursor.last_block, cursor.last_hash)
            if not _on_chain(cursor, market.ledger):
                # The chain under the index changed (reset, reorg): start over.
                self._write("rebuild", lambda s: self._restart(s, seen))
                applied = 0
                continue
            start = cursor.last_block + 1
            if start > head:
                break
            end = min(head, start + _BLOCK_RANGE - 1)
            events: list[TaggedEvent] = [(market.address, e) for e in market.events(start, end)]
            for extra in (models, compute):
                if extra is not None:
                    events += [(extra.address, e) for e in extra.events(start, end)]
            if models is not None or compute is not None:
                events.sort(key=lambda tagged: (tagged[1].block_number, tagged[1].log_index))
            claim = (start - 1, cursor.last_hash, end, market.ledger.block_hash(end) or "")
            try:
                applied += self._write("sync", lambda s: self._apply_range(s, claim, events, loaders, market.address))
            except _Claimed:
                continue
        self.retry_blobs(loaders)
        return applied

    def caught_up(self, chain: ChainHead) -> bool:
        """Whether ``sync`` would find no block to apply: the index is bound, its last block is
        still ``chain``'s, and it is the head. The same checks, in the same order, as ``sync``
        makes before reading any event, so a read may skip ``sync`` (and the contract clients,
        and web3) when this holds, and call ``retry_blobs`` instead."""
        head = chain.block_number()
        with self.session() as session:
            cursor = session.get(CursorRow, 1)
        if cursor is None:
            raise IndexError_("the index is not bound to a deployment")
        return _on_chain(cursor, chain) and cursor.last_block >= head

    @staticmethod
    def _restart(session: Session, seen: tuple[int, str | None]) -> None:
        last, last_hash = seen
        # Claim first, as for a range, so two syncs do not both clear the tables.
        start = func.coalesce(CursorRow.start_block, 0)
        claimed = session.execute(
            update(CursorRow)
            .where(
                CursorRow.id == 1,
                CursorRow.last_block == last,
                CursorRow.last_hash.is_(None) if last_hash is None else CursorRow.last_hash == last_hash,
            )
            .values(start_block=start, last_block=start - 1, last_hash="")
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            _clear(session, keep_cursor=True)

    def _write(self, action: str, work: Callable[[Session], _T]) -> _T:
        """Run ``work`` in one transaction, retrying while SQLite reports a busy database."""
        with _mapped(action):
            for attempt in range(_ATTEMPTS):
                try:
                    with self._sessions.begin() as session:
                        return work(session)
                except OperationalError as exc:
                    # SQLite reports a concurrent writer as "database is locked"
                    # (busy_timeout ran out) or SQLITE_BUSY_SNAPSHOT: roll back, retry.
                    reason = str(exc.orig).lower()
                    busy = self.engine.dialect.name == "sqlite" and ("locked" in reason or "busy" in reason)
                    if not busy or attempt == _ATTEMPTS - 1:
                        raise
                    time.sleep(_RETRY_SLEEP)
        raise AssertionError("unreachable")

    @staticmethod
    def _apply_range(
        session: Session, claim: tuple[int, str | None, int, str], events: list[TaggedEvent], loaders: Loaders,
        data_market: str,
    ) -> int:
        last, last_hash, end, end_hash = claim
        # The claim is the transaction's first write: it takes the cursor's row
        # lock (PostgreSQL re-checks the WHERE once the lock is granted) or the
        # database write lock (SQLite), so a range is applied by one sync only.
        claimed = session.execute(
            update(CursorRow)
            .where(CursorRow.id == 1, CursorRow.last_block == last, CursorRow.last_hash == last_hash)
            .values(last_block=end, last_hash=end_hash)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise _Claimed
        return apply_all(session, events, loaders, data_market)

    def retry_blobs(self, loaders: Loaders) -> None:
        """Load the manifests and metadata that were missing at sync time."""
        with self.session() as session:
            pending = session.execute(
                select(ProposalRow.proposal_id, ProposalRow.manifest_cid).where(
                    ProposalRow.manifest_available.is_(False)
                )
            ).all()
            bare = session.execute(
                select(DatasetRow.dataset_id, DatasetRow.metadata_cid).where(
                    DatasetRow.metadata_available.is_(False)
                )
            ).all()
        for proposal_id, cid in pending:
            items = loaders.manifest(cid)
            if items is not None:
                self._write("manifest retry", lambda s: self._attach(s, proposal_id, items))
        for dataset_id, cid in bare:
            meta = loaders.metadata(cid)
            if meta is not None:
                self._write("metadata retry", lambda s: self._describe(s, dataset_id, meta))

    @staticmethod
    def _attach(session: Session, proposal_id: int, items: list[ItemRecord]) -> None:
        # Claim first, like a range: two syncs must not insert the items twice.
        claimed = session.execute(
            update(ProposalRow)
            .where(ProposalRow.proposal_id == proposal_id, ProposalRow.manifest_available.is_(False))
            .values(manifest_available=True)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            proposal = session.get(ProposalRow, proposal_id)
            assert proposal is not None
            attach_manifest(session, proposal, items)

    @staticmethod
    def _describe(session: Session, dataset_id: int, meta: dict[str, Any]) -> None:
        dataset = session.get(DatasetRow, dataset_id, with_for_update=True)
        if dataset is not None and not dataset.metadata_available:
            apply_metadata(dataset, meta)

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

    def proposal_holding_root(self, dataset_id: int, root: bytes) -> ProposalRow | None:
        """The open or accepted proposal of the dataset with this Merkle root (the
        contract refuses a second one)."""
        query = select(ProposalRow).where(
            ProposalRow.dataset_id == dataset_id,
            ProposalRow.root == "0x" + root.hex(),
            ProposalRow.status.in_(("open", "accepted")),
        )
        with self.session() as session:
            return session.scalars(query).first()

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

    # -- pages: keyset pagination, each page costs the same however deep (see _pages) --

    def _page(self, query: Any, kind: str, keys: tuple[Any, ...], cursor: str | None, limit: int,
              descending: bool = False) -> Page[Any]:
        with self.session() as session:
            return keyset_page(session, query, kind, keys, cursor, limit, descending=descending)

    def items_page(self, dataset_id: int, *, accepted: bool | None = True, proposal_id: int | None = None,
                   cursor: str | None = None, limit: int = 100) -> Page[ItemRow]:
        """Items in (proposal, position) order: a dataset's accepted (or pending) ones, or one proposal's."""
        if proposal_id is not None:
            query = select(ItemRow).where(ItemRow.proposal_id == proposal_id)
            if accepted is not None:
                query = query.where(ItemRow.accepted.is_(accepted))
        elif accepted is None:
            raise InputError("a dataset's items are listed accepted or pending, or per proposal")
        else:
            query = select(ItemRow).where(ItemRow.dataset_id == dataset_id, ItemRow.accepted.is_(accepted))
        return self._page(query, "items", (ItemRow.proposal_id, ItemRow.position), cursor, limit)

    def iter_items(self, dataset_id: int, *, accepted: bool | None = True, proposal_id: int | None = None,
                   batch: int = MAX_LIMIT) -> Iterator[ItemRow]:
        """Every item ``items_page`` lists, read page by page: memory stays one page however many there are."""
        cursor: str | None = None
        while True:
            page = self.items_page(dataset_id, accepted=accepted, proposal_id=proposal_id, cursor=cursor,
                                   limit=batch)
            yield from page.rows
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def proposals_page(self, dataset_id: int | None = None, status: str | None = None, *,
                       cursor: str | None = None, limit: int = 100, newest_first: bool = False) -> Page[ProposalRow]:
        query = select(ProposalRow)
        if dataset_id is not None:
            query = query.where(ProposalRow.dataset_id == dataset_id)
        if status is not None:
            query = query.where(ProposalRow.status == status)
        kind = "proposals-newest" if newest_first else "proposals"
        return self._page(query, kind, (ProposalRow.proposal_id,), cursor, limit, newest_first)

    def proposal_count(self, dataset_id: int | None = None, status: str | None = None) -> int:
        """How many proposals ``proposals_page`` pages through, from the datasets' counters."""
        open_, accepted = func.sum(DatasetRow.open_count), func.sum(DatasetRow.entry_count)
        column = {None: func.sum(DatasetRow.proposal_count), "open": open_, "accepted": accepted,
                  "rejected": func.sum(DatasetRow.proposal_count) - open_ - accepted}[status]
        query = select(func.coalesce(column, 0))
        if dataset_id is not None:
            query = query.where(DatasetRow.dataset_id == dataset_id)
        with self.session() as session:
            return int(session.scalar(query) or 0)

    def entries_page(self, dataset_id: int, *, cursor: str | None = None, limit: int = 100) -> Page[ProposalRow]:
        """A dataset's registry entries (its accepted proposals) in entry order."""
        query = select(ProposalRow).where(ProposalRow.dataset_id == dataset_id, ProposalRow.entry_index.is_not(None))
        return self._page(query, "entries", (ProposalRow.entry_index,), cursor, limit)

    def growth(self, dataset_id: int) -> list[tuple[int, int]]:
        """(entries, items) after each accepted entry, from (0, 0): one small row per entry, never per item."""
        query = (select(ProposalRow.item_count).where(ProposalRow.dataset_id == dataset_id,
                                                      ProposalRow.entry_index.is_not(None))
                 .order_by(ProposalRow.entry_index))
        points, total = [(0, 0)], 0
        with self.session() as session:
            for k, count in enumerate(session.scalars(query), 1):
                total += count
                points.append((k, total))
        return points

    def holders_page(self, dataset_id: int, *, cursor: str | None = None, limit: int = 100) -> Page[HolderRow]:
        """Shareholders, largest first; former holders who withdrew revenue stay listed."""
        query = select(HolderRow).where(HolderRow.dataset_id == dataset_id,
                                        or_(HolderRow.balance != 0, HolderRow.withdrawn != 0))
        return self._page(query, "holders", (HolderRow.stake, HolderRow.holder), cursor, limit, descending=True)

    def votes_page(self, proposal_id: int, *, cursor: str | None = None, limit: int = 100) -> Page[VoteRow]:
        query = select(VoteRow).where(VoteRow.proposal_id == proposal_id)
        return self._page(query, "votes", (VoteRow.id,), cursor, limit)

    def revenue_page(self, dataset_id: int, *, cursor: str | None = None, limit: int = 100) -> Page[RevenueRow]:
        query = select(RevenueRow).where(RevenueRow.dataset_id == dataset_id)
        return self._page(query, "revenue", (RevenueRow.id,), cursor, limit)

    def comments_page(self, proposal_id: int, *, cursor: str | None = None, limit: int = 100) -> Page[CommentRow]:
        query = select(CommentRow).where(CommentRow.proposal_id == proposal_id)
        return self._page(query, "comments", (CommentRow.id,), cursor, limit)

    def proposal_labels(self, proposal_id: int) -> dict[str, int]:
        """Items per label of one proposal, counted by the database (one pass, no rows loaded)."""
        query = (select(ItemRow.label, func.count()).where(ItemRow.proposal_id == proposal_id)
                 .group_by(ItemRow.label).order_by(ItemRow.label))
        with self.session() as session:
            return {label: int(count) for label, count in session.execute(query).tuples()}

    def duplicate_items(self, proposal_id: int) -> list[tuple[str, int, int]]:
        """(CID, position, duplicate of) of a proposal's flagged items, in manifest order."""
        query = (select(ItemRow.cid, ItemRow.position, ItemRow.duplicate_of)
                 .where(ItemRow.proposal_id == proposal_id, ItemRow.duplicate_of.is_not(None))
                 .order_by(ItemRow.position))
        with self.session() as session:
            return [(cid, int(position), int(of or 0)) for cid, position, of in session.execute(query).tuples()]

    def label_counts(self, dataset_id: int) -> list[tuple[str, int]]:
        """Accepted items per label, from the counters the indexer keeps."""
        query = select(LabelCountRow.label, LabelCountRow.count).where(LabelCountRow.dataset_id == dataset_id)
        with self.session() as session:
            return [(label, int(count)) for label, count in session.execute(query).tuples()]

    # -- discussion threads (off-chain: the index owns them) --------------------

    def add_comment(self, proposal_id: int, author: str, body: str, message: str, signature: str) -> CommentRow:
        """Store a comment whose ``message`` the caller has checked ``author`` signed."""
        self.proposal(proposal_id)
        row = CommentRow(proposal_id=proposal_id, author=author, body=body, message=message,
                         signature=signature, created=time.time())
        with _mapped("comment"), self._sessions.begin() as session:
            session.add(row)
        return row

    def comments(self, proposal_id: int) -> list[CommentRow]:
        with self.session() as session:
            query = select(CommentRow).where(CommentRow.proposal_id == proposal_id).order_by(CommentRow.id)
            return list(session.scalars(query))
