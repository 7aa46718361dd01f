// The conformance sequence as an ethers v6 application runs it.
import { ethers } from "ethers";
import { artifact, keys, raw, Transcript, until, url } from "./common.mjs";

const provider = new ethers.JsonRpcProvider(url, undefined, { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
provider.pollingInterval = 50;
const [alice, bob] = keys.map((k) => new ethers.Wallet(k, provider));
const pauper = ethers.Wallet.createRandom(provider);
const t = new Transcript();
const GAS = 300_000n;

function failure(error) {
  // ethers classifies node errors by their message; the JSON-RPC code rides along.
  const rpc = error.error ?? error.info?.error ?? {};
  return {
    code: error.code,
    rpcCode: rpc.code ?? null,
    reason: error.reason ?? null,
    data: error.data ?? null,
    revert: error.revert ? { name: error.revert.name, args: error.revert.args.map(String) } : null,
  };
}

function receiptView(r) {
  return {
    hash: r.hash, status: r.status, type: r.type, blockNumber: r.blockNumber, index: r.index,
    gasUsed: r.gasUsed, cumulativeGasUsed: r.cumulativeGasUsed, gasPrice: r.gasPrice,
    contractAddress: r.contractAddress, from: r.from, to: r.to, logsBloom: r.logsBloom,
    logs: r.logs.map((l) => ({ address: l.address, topics: l.topics, data: l.data, index: l.index })),
  };
}

function txView(tx) {
  return {
    hash: tx.hash, type: tx.type, nonce: tx.nonce, gasLimit: tx.gasLimit, gasPrice: tx.gasPrice,
    maxFeePerGas: tx.maxFeePerGas, maxPriorityFeePerGas: tx.maxPriorityFeePerGas, value: tx.value,
    accessList: tx.accessList, chainId: tx.chainId, from: tx.from, to: tx.to, data: tx.data,
    blockNumber: tx.blockNumber, index: tx.index,
  };
}

async function sendAndWait(wallet, request) {
  const tx = await wallet.sendTransaction({ gasLimit: GAS, ...request });
  return { tx: txView(tx), receipt: receiptView(await tx.wait()) };
}

await t.step("network", async () => ({ chainId: (await provider.getNetwork()).chainId, head: await provider.getBlockNumber() }));
await t.step("feeData", async () => {
  const fee = await provider.getFeeData();
  return { gasPrice: fee.gasPrice, maxFeePerGas: fee.maxFeePerGas, maxPriorityFeePerGas: fee.maxPriorityFeePerGas };
});

const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, alice);
let probe;
await t.step("deploy", async () => {
  probe = await factory.deploy(7n, { value: 1000n, gasLimit: 1_000_000n });
  const receipt = await probe.deploymentTransaction().wait();
  return { receipt: receiptView(receipt), code: (await provider.getCode(await probe.getAddress())).length };
});
const probeAddress = await probe.getAddress();
const iface = probe.interface;

await t.step("legacy", () => sendAndWait(alice, { type: 0, to: bob.address, value: 12345n }));
await t.step("eip2930", () =>
  sendAndWait(alice, {
    type: 1, to: probeAddress, data: iface.encodeFunctionData("store", [1n, 11n]),
    accessList: [{ address: probeAddress, storageKeys: [ethers.zeroPadValue("0x00", 32)] }],
  }));
await t.step("eip1559", () =>
  sendAndWait(alice, { type: 2, to: probeAddress, data: iface.encodeFunctionData("store", [2n, 22n]) }));
await t.step("contractWrite", async () => {
  const tx = await probe.note(ethers.id("tag"), "hello from ethers", { gasLimit: GAS });
  const receipt = await tx.wait();
  return { receipt: receiptView(receipt), parsed: receipt.logs.map((l) => iface.parseLog(l)?.args.map(String)) };
});
await t.step("reads", async () => ({
  total: await probe.total(), slot2: await probe.slots(2n), owner: await probe.owner(),
  storage0: await provider.getStorage(probeAddress, 0n), balance: await provider.getBalance(probeAddress),
}));

// Access lists: the estimate must include them, and a transaction sent with that
// estimate must succeed (a too-low estimate runs out of gas and loses its fee).
const peekData = iface.encodeFunctionData("peek", [bob.address]);
const peekList = [{ address: bob.address, storageKeys: [] }];
await t.step("estimateGas", async () => ({
  plain: await provider.estimateGas({ from: alice.address, to: probeAddress, data: peekData }),
  store: await probe.store.estimateGas(3n, 33n),
}));
await t.step("estimateWithAccessList", async () => {
  const estimate = await provider.estimateGas({ from: alice.address, to: probeAddress, data: peekData, type: 1, accessList: peekList });
  const tx = await alice.sendTransaction({ to: probeAddress, data: peekData, type: 1, accessList: peekList, gasLimit: estimate });
  const receipt = await tx.wait().catch((e) => e.receipt);
  return { estimate, status: receipt.status, gasUsed: receipt.gasUsed };
}, failure);
await t.step("createAccessList", () =>
  provider.send("eth_createAccessList", [{ from: alice.address, to: probeAddress, data: peekData }, "latest"]), failure);

// Reverts: a reason string, a custom error, on call, on estimate and on chain.
await t.step("revertString", () => probe.fail.staticCall("boom"), failure);
await t.step("revertCustom", () => probe.refuse.staticCall(5n), failure);
await t.step("revertEstimate", () => probe.guarded.estimateGas(500n), failure);
await t.step("revertCustomEstimate", () => probe.guarded.estimateGas(13n), failure);
await t.step("revertOnChain", async () => {
  const tx = await probe.guarded(13n, { gasLimit: 100_000n });
  return tx.wait().then(receiptView, (e) => ({ code: e.code, receipt: receiptView(e.receipt) }));
});

// Logs with filters and ranges.
const head = await provider.getBlockNumber();
const logView = (l) => ({ blockNumber: l.blockNumber, index: l.index, address: l.address, topics: l.topics, data: l.data, transactionHash: l.transactionHash });
await t.step("logsAll", async () => (await provider.getLogs({ address: probeAddress, fromBlock: 0, toBlock: "latest" })).map(logView));
await t.step("logsTopic", async () => (await probe.queryFilter(probe.filters.Stored(alice.address, 2n), 0, "latest")).map((e) => e.args.map(String)));
await t.step("logsRange", async () => (await provider.getLogs({ fromBlock: 2, toBlock: 3 })).map(logView));
await t.step("logsOr", async () => (await provider.getLogs({ fromBlock: 0, topics: [[iface.getEvent("Noted").topicHash, iface.getEvent("Stored").topicHash]] })).length);
await t.step("logsBeyondHead", async () => (await provider.getLogs({ fromBlock: head + 1, toBlock: head + 10 })).map(logView), failure);
await t.step("logsEndBeyondHead", async () => (await provider.getLogs({ fromBlock: head, toBlock: head + 10 })).map(logView), failure);

// Past-block state and the block context of calls.
await t.step("pastState", async () => ({
  balance: await provider.getBalance(bob.address, 1), storage: await provider.getStorage(probeAddress, 0n, 2),
  total: await probe.total({ blockTag: 2 }), code: (await provider.getCode(probeAddress, 0)).length,
}));
async function contextAt(tag) {
  const block = await provider.getBlock(tag);
  const [number, timestamp, basefee, chainid, coinbase, gaslimit] = await probe.context({ blockTag: tag });
  return {
    number, numberIsBlock: number === BigInt(block.number), timeIsBlock: timestamp === BigInt(block.timestamp),
    basefee, basefeeIsBlock: basefee === block.baseFeePerGas, chainid, coinbase, gaslimit,
  };
}
await t.step("contextLatest", () => contextAt("latest"));
await t.step("contextPast", () => contextAt(2));

// Filters and the polling subscriptions built on them.
await t.step("rawFilters", async () => {
  const logs = await provider.send("eth_newFilter", [{ address: probeAddress }]);
  const blocks = await provider.send("eth_newBlockFilter", []);
  const tx = await probe.store(4n, 44n, { gasLimit: GAS });
  const receipt = await tx.wait();
  const changes = await provider.send("eth_getFilterChanges", [logs]);
  const blockChanges = await provider.send("eth_getFilterChanges", [blocks]);
  const again = await provider.send("eth_getFilterChanges", [logs]);
  return {
    logs: changes.map((l) => ({ blockNumber: l.blockNumber, topics: l.topics, data: l.data })),
    blocks: blockChanges.length, lastIsReceiptBlock: blockChanges.at(-1) === receipt.blockHash,
    again: again.length, filterLogs: (await provider.send("eth_getFilterLogs", [logs])).length,
    uninstalled: await provider.send("eth_uninstallFilter", [logs]),
    unknown: await provider.send("eth_getFilterChanges", [logs]).catch((e) => failure(e).rpcCode),
  };
});
await t.step("contractOn", async () => {
  const seen = [];
  await probe.on("Stored", (who, key, value) => seen.push([who, key, value].map(String)));
  await new Promise((resolve) => setTimeout(resolve, 300)); // the filter is installed
  for (const [k, v] of [[5n, 55n], [6n, 66n]]) await (await probe.store(k, v, { gasLimit: GAS })).wait();
  // ethers polls the filter when it sees a new block; one more block makes sure it
  // polls after the last event's block (on anvil as on us).
  await (await alice.sendTransaction({ to: bob.address, value: 1n, gasLimit: 21_000n })).wait();
  const complete = await until(() => seen.length >= 2);
  await probe.removeAllListeners();
  return { complete, seen };
});
await t.step("providerOnBlock", async () => {
  const seen = new Set();
  await provider.on("block", (n) => seen.add(n));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const receipt = await (await alice.sendTransaction({ to: bob.address, value: 1n, gasLimit: 21_000n })).wait();
  const complete = await until(() => seen.has(receipt.blockNumber));
  await provider.removeAllListeners("block");
  return { complete };
});

// Receipts, transactions, blocks and nonces.
await t.step("history", async () => {
  const n = await provider.getBlockNumber();
  const block = await provider.getBlock(3, true);
  const tx = await provider.getTransaction(block.transactions[0]);
  return {
    block: { number: block.number, gasUsed: block.gasUsed, gasLimit: block.gasLimit, baseFeePerGas: block.baseFeePerGas, miner: block.miner, transactions: block.transactions },
    tx: txView(tx), receipt: receiptView(await provider.getTransactionReceipt(tx.hash)),
    unknownReceipt: await provider.getTransactionReceipt(ethers.id("nothing")),
    unknownTx: await provider.getTransaction(ethers.id("nothing")),
    nonce: await provider.getTransactionCount(alice.address), pendingNonce: await provider.getTransactionCount(alice.address, "pending"),
    pastNonce: await provider.getTransactionCount(alice.address, 2), head: n,
  };
});
await t.step("feeHistory", () => provider.send("eth_feeHistory", ["0x4", "latest", [10, 50, 90]]));

// What a node must refuse, and how ethers classifies the refusal.
const fees = { maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n, gasLimit: 21_000n };
await t.step("insufficientFunds", () => pauper.sendTransaction({ to: bob.address, value: 1n, nonce: 0, ...fees }), failure);
await t.step("nonceTooLow", () => alice.sendTransaction({ to: bob.address, value: 1n, nonce: 0, ...fees }), failure);
await t.step("intrinsicGasTooLow", () => alice.sendTransaction({ to: bob.address, value: 1n, ...fees, gasLimit: 20_000n }), failure);
await t.step("tipAboveFeeCap", () => alice.sendTransaction({ to: bob.address, value: 1n, gasLimit: 21_000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 2n * 10n ** 9n }), failure);
await t.step("overBalanceCall", () => provider.call({ from: bob.address, to: alice.address, value: 10n ** 40n }), failure);
await t.step("overBalanceEstimate", () => provider.estimateGas({ from: bob.address, to: alice.address, value: 10n ** 40n }), failure);
await t.step("unknownMethod", () => provider.send("eth_fooBar", []), failure);
await t.step("replacementUnderpriced", async () => {
  // A nonce gap keeps the first one pooled on both nodes; the gap is filled afterwards.
  const nonce = await provider.getTransactionCount(bob.address, "latest");
  const queued = await bob.sendTransaction({ to: alice.address, value: 1n, nonce: nonce + 1, ...fees });
  const refused = await bob.sendTransaction({ to: alice.address, value: 2n, nonce: nonce + 1, ...fees }).then(() => "accepted", failure);
  await (await bob.sendTransaction({ to: alice.address, value: 3n, nonce, ...fees })).wait();
  const mined = await queued.wait();
  return { refused, minedStatus: mined.status, nonce: await provider.getTransactionCount(bob.address) };
}, failure);
await t.step("rawMissing", async () => ({
  byNumberAndIndex: await raw("eth_getTransactionByBlockNumberAndIndex", ["0x1", "0x0"]),
  countByHash: await raw("eth_getBlockTransactionCountByHash", [ethers.id("nothing")]),
  uncleCount: await raw("eth_getUncleCountByBlockNumber", ["0x1"]),
  sha3: await raw("web3_sha3", ["0x68656c6c6f"]),
  coinbase: await raw("eth_coinbase", []),
  pendingFilter: (await raw("eth_newPendingTransactionFilter", [])).error ?? "ok",
}));

provider.destroy();
t.print();
