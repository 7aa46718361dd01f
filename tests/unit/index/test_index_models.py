"""The index mirrors every ModelMarket event and names the source of each payment to a dataset."""

from __future__ import annotations

from pathlib import Path

from databright.index import Index, get_model
from tests._model_history import FEE, PRICE, ModelHistory, deploy_model_market, model_history, model_snapshot
from tests.unit.index.conftest import ACCOUNTS, World


def _advance(world: World, seconds: int) -> None:
    provider = world.ledger.w3.provider
    provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _history(world: World, cache: Path) -> ModelHistory:
    models = deploy_model_market(world.ledger, ACCOUNTS[0], world.market.address, cache)
    return model_history(world.market, models, ACCOUNTS, world.store, lambda s: _advance(world, s))


def _index(world: World, history: ModelHistory, path: Path) -> Index:
    index = Index(f"sqlite:///{path}")
    index.bind(world.ledger.chain_id, world.market.address, world.deploy_block, deploy_tx=world.deploy_tx,
               ledger=world.ledger, model_market=history.models.address)
    return index


def test_models_channels_and_revenue_by_source(world: World, tmp_path: Path, contract_cache: Path) -> None:
    history = _history(world, contract_cache)
    index = _index(world, history, tmp_path / "index.sqlite")
    index.sync(world.market, world.loaders(), models=history.models)
    snap = model_snapshot(index, history)

    owner = ACCOUNTS[2].address
    paid = 200 * PRICE
    assert snap["models"] == [
        (1, 1, owner, 2 * PRICE, 1000, FEE, 2, 200, paid, paid // 10),
        (2, 1, owner, PRICE, 500, FEE, 1, 0, 0, 0),
    ]
    versions = snap["versions"]
    assert [(v[0], v[1], v[4], v[5]) for v in versions] == [  # type: ignore[attr-defined]
        (1, 1, 800_000, 790_000), (1, 2, 850_000, 840_000), (2, 1, 700_000, 810_000)]
    assert all(v[7] == ACCOUNTS[3].address and v[6] for v in versions)  # type: ignore[attr-defined]
    assert [p[:2] for p in snap["prices"]] == [(1, PRICE), (1, 2 * PRICE), (2, PRICE)]  # type: ignore[attr-defined]
    assert snap["channels"] == [(1, 1, 210 * PRICE, paid, "settled", 10 * PRICE)]
    # Predictions are what each redemption paid at the price in effect then.
    assert snap["redemptions"] == [(1, 120 * PRICE, 120 * PRICE, 12 * PRICE, PRICE, 120),
                                   (1, 200 * PRICE, 80 * PRICE, 8 * PRICE, PRICE, 80)]
    assert snap["revenue"] == {"training_fee": 2 * FEE, "royalty": paid // 10, "forfeited_bond": 10**16,
                               "payment": 3 * PRICE}
    assert sum(snap["revenue"].values()) == index.dataset(1).revenue_total  # type: ignore[attr-defined]

    first, second = snap["impact"]  # type: ignore[misc]
    assert (first.model_id, first.verified_score_ppm, first.improvement_ppm) == (1, 840_000, None)
    assert (second.model_id, second.verified_score_ppm, second.improvement_ppm) == (2, 810_000, -30_000)
    # The contributor holds 50 of 1050 shares at every payment.
    mine = {c.model_id: c for c in snap["contributor"]}  # type: ignore[attr-defined]
    assert mine[1].contributed_items == 5
    assert mine[1].training_fee_wei == FEE * 50 // 1050
    assert mine[1].royalties_wei == (12 * PRICE) * 50 // 1050 + (8 * PRICE) * 50 // 1050
    assert mine[2].paid_wei == FEE * 50 // 1050
    assert get_model(index, 1).predictions == 200


def test_rebuilding_from_scratch_gives_the_same_rows(world: World, tmp_path: Path, contract_cache: Path) -> None:
    history = _history(world, contract_cache)
    stepwise = _index(world, history, tmp_path / "a.sqlite")
    head = world.ledger.block_number()
    for end in range(world.deploy_block, head + 1, 3):  # ranges that split the history anywhere
        stepwise.sync(world.market, world.loaders(), to_block=end, models=history.models)
    stepwise.sync(world.market, world.loaders(), models=history.models)
    assert stepwise.sync(world.market, world.loaders(), models=history.models) == 0
    fresh = _index(world, history, tmp_path / "b.sqlite")
    fresh.sync(world.market, world.loaders(), models=history.models)
    assert model_snapshot(stepwise, history) == model_snapshot(fresh, history)


def test_a_model_market_bound_later_rebuilds_the_index(world: World, tmp_path: Path, contract_cache: Path) -> None:
    history = _history(world, contract_cache)
    path = tmp_path / "index.sqlite"
    plain = world.index(path)  # bound without the ModelMarket: deposits are only payments
    plain.sync(world.market, world.loaders())
    assert model_snapshot(plain, history)["revenue"]["training_fee"] == 0  # type: ignore[index]
    plain.close()
    index = _index(world, history, path)
    index.sync(world.market, world.loaders(), models=history.models)
    assert model_snapshot(index, history)["revenue"]["training_fee"] == 2 * FEE  # type: ignore[index]
