# pragma version ~=0.4.3
"""
@title GreedyReceiver
@notice A worker contract that, when paid, calls back into ComputeMarket to
        withdraw again: the test that a pull payment cannot be taken twice.
"""


interface ComputeMarket:
    def register_worker(min_fee: uint256): payable
    def withdraw_earnings() -> uint256: nonpayable


market: public(ComputeMarket)
greedy: public(bool)


@deploy
def __init__(market_: ComputeMarket):
    self.market = market_
    self.greedy = True


@external
def register(min_fee: uint256, stake: uint256):
    extcall self.market.register_worker(min_fee, value=stake)


@external
def set_greedy(greedy_: bool):
    self.greedy = greedy_


@external
def withdraw():
    extcall self.market.withdraw_earnings()


@external
@payable
def __default__():
    if self.greedy:
        extcall self.market.withdraw_earnings()
