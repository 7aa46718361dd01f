// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// A contract that exercises what clients read back from a node: events with
/// indexed arguments, reverts with a string and with a custom error, storage and
/// the block context.
contract Probe {
    error Refused(address who, uint256 amount);

    event Stored(address indexed who, uint256 indexed key, uint256 value);
    event Noted(bytes32 indexed tag, string text);

    uint256 public total;
    mapping(uint256 => uint256) public slots;
    address public owner;

    constructor(uint256 initial) payable {
        total = initial;
        owner = msg.sender;
        emit Stored(msg.sender, 0, initial);
    }

    function store(uint256 key, uint256 value) external {
        slots[key] = value;
        total += value;
        emit Stored(msg.sender, key, value);
    }

    function note(bytes32 tag, string calldata text) external {
        emit Noted(tag, text);
    }

    function guarded(uint256 value) external {
        require(value <= 100, "probe: value too large");
        if (value == 13) revert Refused(msg.sender, value);
        total = value;
    }

    function refuse(uint256 amount) external view returns (uint256) {
        revert Refused(msg.sender, amount);
    }

    function fail(string calldata reason) external pure returns (uint256) {
        revert(reason);
    }

    function context()
        external
        view
        returns (uint256 number, uint256 timestamp, uint256 basefee, uint256 chainid, address coinbase, uint256 gaslimit)
    {
        return (block.number, block.timestamp, block.basefee, block.chainid, block.coinbase, block.gaslimit);
    }

    /// Touches another account's balance and code: an access list makes this cheaper.
    function peek(address other) external view returns (uint256, uint256) {
        return (other.balance, other.code.length);
    }

    function pay(address payable to) external payable {
        to.transfer(msg.value);
    }
}
