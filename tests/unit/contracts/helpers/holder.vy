# pragma version ~=0.4.3
"""
@title Test holder contract
@notice Holds DataMarket shares and, when armed, tries to re-enter the
        market from its ETH and ERC-1155 receive hooks.
"""


interface IDataMarket:
    def withdraw(dataset_id: uint256) -> uint256: nonpayable
    def deposit(dataset_id: uint256): payable


market: public(IDataMarket)
dataset_id: public(uint256)
reenter: public(bool)
accept: public(bool)


@deploy
def __init__(market_: address):
    self.market = IDataMarket(market_)
    self.accept = True


@external
def arm(dataset_id_: uint256, reenter_: bool, accept_: bool):
    """
    @notice Configures the hooks.
    """
    self.dataset_id = dataset_id_
    self.reenter = reenter_
    self.accept = accept_


@external
def pull(dataset_id_: uint256) -> uint256:
    """
    @notice Withdraws the holder's revenue.
    """
    return extcall self.market.withdraw(dataset_id_)


@external
@payable
def __default__():
    if self.reenter:
        extcall self.market.withdraw(self.dataset_id)


@external
def onERC1155Received(operator: address, owner: address, id: uint256, amount: uint256, data: Bytes[1_024]) -> bytes4:
    """
    @notice ERC-1155 single receive hook.
    """
    assert self.accept, "holder: rejected"
    if self.reenter:
        extcall self.market.withdraw(self.dataset_id)
    return method_id("onERC1155Received(address,address,uint256,uint256,bytes)", output_type=bytes4)


@external
def onERC1155BatchReceived(
    operator: address, owner: address, ids: DynArray[uint256, 128], amounts: DynArray[uint256, 128], data: Bytes[1_024]
) -> bytes4:
    """
    @notice ERC-1155 batch receive hook.
    """
    assert self.accept, "holder: rejected"
    return method_id("onERC1155BatchReceived(address,address,uint256[],uint256[],bytes)", output_type=bytes4)
