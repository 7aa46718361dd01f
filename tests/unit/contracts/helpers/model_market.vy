# pragma version ~=0.4.3
"""
@title Test model market
@notice Stands where the model market will: reads a dataset's terms through
        IDataMarket and pays the dataset its royalty and training fee.
"""

from databright.chain.contracts import IDataMarket


market: public(IDataMarket)


@deploy
def __init__(market_: address):
    self.market = IDataMarket(market_)


@external
@view
def terms(dataset_id: uint256) -> (uint256, uint256, address):
    """
    @notice The dataset's training fee, least royalty and evaluator.
    """
    return (
        staticcall self.market.training_fee(dataset_id),
        staticcall self.market.min_royalty_bps(dataset_id),
        staticcall self.market.evaluator(dataset_id),
    )


@external
@payable
def pay_prediction(dataset_id: uint256) -> uint256:
    """
    @notice Pays the dataset its least royalty of `msg.value`; keeps the rest.
    """
    royalty: uint256 = msg.value * staticcall self.market.min_royalty_bps(dataset_id) // 10_000
    extcall self.market.deposit(dataset_id, value=royalty)
    return royalty
