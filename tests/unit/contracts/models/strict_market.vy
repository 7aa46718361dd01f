# pragma version ~=0.4.3
"""
@title StrictMarket
@license Apache-2.0
@notice A dataset market whose only dataset asks for a 5% minimum royalty,
        for the path DataMarket does not take yet.
"""

@external
@payable
def deposit(dataset_id: uint256):
    """
    @notice Accepts a payment to dataset 1.
    @param dataset_id The dataset id.
    """
    assert dataset_id == 1, "strict: unknown dataset"


@external
@view
def training_fee(dataset_id: uint256) -> uint256:
    """
    @notice No training fee.
    @param dataset_id The dataset id.
    @return uint256 Zero.
    """
    return 0


@external
@view
def min_royalty_bps(dataset_id: uint256) -> uint256:
    """
    @notice A 5% minimum royalty.
    @param dataset_id The dataset id.
    @return uint256 500.
    """
    return 500


@external
@view
def evaluator(dataset_id: uint256) -> address:
    """
    @notice No evaluator.
    @param dataset_id The dataset id.
    @return address Empty.
    """
    return empty(address)
