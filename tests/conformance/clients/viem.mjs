// The conformance sequence as a viem application runs it.
import {
  BaseError, ContractFunctionRevertedError, createPublicClient, createWalletClient, defineChain,
  encodeFunctionData, http, keccak256, parseEventLogs, toHex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { artifact, keys, Transcript, until, url } from "./common.mjs";

const chain = defineChain({
  id: 31415, name: "conformance", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [url] } },
});
const transport = http(url);
const client = createPublicClient({ chain, transport, pollingInterval: 50, cacheTime: 0 });
const [alice, bob] = keys.map((k) => privateKeyToAccount(k));
const pauper = privateKeyToAccount(generatePrivateKey());
const wallet = (account) => createWalletClient({ account, chain, transport, pollingInterval: 50, cacheTime: 0 });
const aliceWallet = wallet(alice);
const abi = artifact.abi;
const t = new Transcript();
const GAS = 300_000n;

function failure(error) {
  const names = [];
  for (let e = error; e; e = e.cause) names.push(e.name);
  const rpc = error instanceof BaseError ? error.walk((e) => typeof e.code === "number") : null;
  const revert = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
  return {
    names, rpcCode: rpc?.code ?? null, reason: revert?.reason ?? null,
    errorName: revert?.data?.errorName ?? null, args: revert?.data?.args?.map(String) ?? null,
  };
}

const receiptView = (r) => ({
  transactionHash: r.transactionHash, status: r.status, type: r.type, blockNumber: r.blockNumber,
  transactionIndex: r.transactionIndex, gasUsed: r.gasUsed, cumulativeGasUsed: r.cumulativeGasUsed,
  effectiveGasPrice: r.effectiveGasPrice, contractAddress: r.contractAddress, from: r.from, to: r.to,
  logs: r.logs.map((l) => ({ address: l.address, topics: l.topics, data: l.data, logIndex: l.logIndex })),
});
const wait = async (hash) => receiptView(await client.waitForTransactionReceipt({ hash, pollingInterval: 50 }));

await t.step("chain", async () => ({ id: await client.getChainId(), head: await client.getBlockNumber() }));
await t.step("fees", async () => ({
  gasPrice: await client.getGasPrice(), priority: await client.estimateMaxPriorityFeePerGas(),
  fees: await client.estimateFeesPerGas(), legacy: await client.estimateFeesPerGas({ type: "legacy" }),
}));

let probe;
await t.step("deploy", async () => {
  const receipt = await wait(await aliceWallet.deployContract({ abi, bytecode: artifact.bytecode, args: [7n], value: 1000n, gas: 1_000_000n }));
  probe = receipt.contractAddress;
  const tx = await client.getTransaction({ hash: receipt.transactionHash });
  return { receipt, tx: { nonce: tx.nonce, gas: tx.gas, maxFeePerGas: tx.maxFeePerGas, maxPriorityFeePerGas: tx.maxPriorityFeePerGas, value: tx.value, type: tx.type, input: tx.input.length } };
});
const slot0 = toHex(0, { size: 32 });
await t.step("legacy", async () => wait(await aliceWallet.sendTransaction({ type: "legacy", to: bob.address, value: 12345n, gas: GAS })));
await t.step("eip2930", async () => wait(await aliceWallet.sendTransaction({
  type: "eip2930", to: probe, gas: GAS, data: encodeFunctionData({ abi, functionName: "store", args: [1n, 11n] }),
  accessList: [{ address: probe, storageKeys: [slot0] }],
})));
await t.step("eip1559", async () => wait(await aliceWallet.sendTransaction({
  type: "eip1559", to: probe, gas: GAS, data: encodeFunctionData({ abi, functionName: "store", args: [2n, 22n] }),
})));
await t.step("writeContract", async () => {
  const hash = await aliceWallet.writeContract({ address: probe, abi, functionName: "note", args: [keccak256(toHex("tag")), "hello from viem"], gas: GAS });
  const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  return { receipt: receiptView(receipt), events: parseEventLogs({ abi, logs: receipt.logs }).map((e) => ({ name: e.eventName, args: e.args })) };
});
await t.step("reads", async () => ({
  total: await client.readContract({ address: probe, abi, functionName: "total" }),
  slot2: await client.readContract({ address: probe, abi, functionName: "slots", args: [2n] }),
  storage0: await client.getStorageAt({ address: probe, slot: slot0 }),
  balance: await client.getBalance({ address: probe }),
  nonce: await client.getTransactionCount({ address: alice.address }),
}));

const peekData = encodeFunctionData({ abi, functionName: "peek", args: [bob.address] });
const peekList = [{ address: bob.address, storageKeys: [] }];
await t.step("estimateWithAccessList", async () => {
  const gas = await client.estimateGas({ account: alice, to: probe, data: peekData, accessList: peekList });
  const receipt = await wait(await aliceWallet.sendTransaction({ type: "eip2930", to: probe, data: peekData, accessList: peekList, gas }));
  return { gas, status: receipt.status, gasUsed: receipt.gasUsed };
}, failure);
await t.step("createAccessList", () => client.createAccessList({ account: alice, to: probe, data: peekData }), failure);

await t.step("revertString", () => client.simulateContract({ account: alice, address: probe, abi, functionName: "fail", args: ["boom"] }), failure);
await t.step("revertCustom", () => client.simulateContract({ account: alice, address: probe, abi, functionName: "refuse", args: [5n] }), failure);
await t.step("revertEstimate", () => client.estimateContractGas({ account: alice, address: probe, abi, functionName: "guarded", args: [500n] }), failure);
await t.step("revertOnChain", async () => wait(await aliceWallet.writeContract({ address: probe, abi, functionName: "guarded", args: [13n], gas: 100_000n })));

const stored = abi.find((x) => x.type === "event" && x.name === "Stored");
const head = await client.getBlockNumber();
const logView = (l) => ({ blockNumber: l.blockNumber, logIndex: l.logIndex, address: l.address, topics: l.topics, data: l.data, args: l.args ?? null });
await t.step("logsEvent", async () => (await client.getLogs({ address: probe, event: stored, fromBlock: 0n })).map(logView));
await t.step("logsArgs", async () => (await client.getLogs({ event: stored, args: { key: 2n }, fromBlock: 0n, toBlock: "latest" })).map(logView));
await t.step("logsRange", async () => (await client.getLogs({ fromBlock: 2n, toBlock: 3n })).map(logView));
await t.step("logsBeyondHead", async () => (await client.getLogs({ fromBlock: head + 1n, toBlock: head + 10n })).map(logView), failure);

await t.step("pastState", async () => ({
  balance: await client.getBalance({ address: bob.address, blockNumber: 1n }),
  storage: await client.getStorageAt({ address: probe, slot: slot0, blockNumber: 2n }),
  total: await client.readContract({ address: probe, abi, functionName: "total", blockNumber: 2n }),
  nonce: await client.getTransactionCount({ address: alice.address, blockNumber: 2n }),
}));
async function contextAt(blockNumber) {
  const block = await client.getBlock(blockNumber === undefined ? {} : { blockNumber });
  const [number, timestamp, basefee, chainid, coinbase, gaslimit] = await client.readContract({
    address: probe, abi, functionName: "context", ...(blockNumber === undefined ? {} : { blockNumber }) });
  return { number, numberIsBlock: number === block.number, timeIsBlock: timestamp === block.timestamp,
    basefee, basefeeIsBlock: basefee === block.baseFeePerGas, chainid, coinbase, gaslimit };
}
await t.step("contextLatest", () => contextAt(undefined));
await t.step("contextPast", () => contextAt(2n));

await t.step("eventFilter", async () => {
  const filter = await client.createContractEventFilter({ abi, address: probe, eventName: "Stored" });
  await wait(await aliceWallet.writeContract({ address: probe, abi, functionName: "store", args: [4n, 44n], gas: GAS }));
  const changes = await client.getFilterChanges({ filter });
  const again = await client.getFilterChanges({ filter });
  const all = await client.getFilterLogs({ filter });
  return { changes: changes.map(logView), again: again.length, all: all.length, uninstalled: await client.uninstallFilter({ filter }) };
});
await t.step("blockFilter", async () => {
  const filter = await client.createBlockFilter();
  const receipt = await client.waitForTransactionReceipt({ hash: await aliceWallet.sendTransaction({ to: bob.address, value: 1n, gas: 21_000n }), pollingInterval: 50 });
  const changes = await client.getFilterChanges({ filter });
  return { count: changes.length, lastIsReceiptBlock: changes.at(-1) === receipt.blockHash };
});
await t.step("watchContractEvent", async () => {
  const seen = [];
  const unwatch = client.watchContractEvent({ address: probe, abi, eventName: "Stored", poll: true, pollingInterval: 50,
    onLogs: (logs) => seen.push(...logs.map((l) => l.args)) });
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const [k, v] of [[5n, 55n], [6n, 66n]]) await wait(await aliceWallet.writeContract({ address: probe, abi, functionName: "store", args: [k, v], gas: GAS }));
  const complete = await until(() => seen.length >= 2);
  unwatch();
  return { complete, seen };
});
await t.step("watchBlockNumber", async () => {
  const seen = new Set();
  const unwatch = client.watchBlockNumber({ poll: true, pollingInterval: 50, onBlockNumber: (n) => seen.add(n) });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const receipt = await wait(await aliceWallet.sendTransaction({ to: bob.address, value: 1n, gas: 21_000n }));
  const complete = await until(() => seen.has(receipt.blockNumber));
  unwatch();
  return { complete };
});
await t.step("watchPending", async () => {
  const filter = await client.createPendingTransactionFilter();
  return { type: filter.type, uninstalled: await client.uninstallFilter({ filter }) };
}, failure);

await t.step("receipts", async () => {
  const block = await client.getBlock({ blockNumber: 3n });
  const hash = block.transactions[0];
  const tx = await client.getTransaction({ hash });
  return {
    receipt: receiptView(await client.getTransactionReceipt({ hash })),
    tx: { hash: tx.hash, type: tx.type, nonce: tx.nonce, gas: tx.gas, gasPrice: tx.gasPrice, maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas, accessList: tx.accessList, input: tx.input, value: tx.value,
      v: tx.v, r: tx.r, s: tx.s, yParity: tx.yParity, blockNumber: tx.blockNumber, transactionIndex: tx.transactionIndex },
    pendingNonce: await client.getTransactionCount({ address: alice.address, blockTag: "pending" }),
    unknown: await client.getTransactionReceipt({ hash: keccak256(toHex("nothing")) }).catch((e) => e.name),
  };
});
await t.step("block", async () => {
  const b = await client.getBlock({ blockNumber: 3n, includeTransactions: true });
  return { number: b.number, gasUsed: b.gasUsed, gasLimit: b.gasLimit, baseFeePerGas: b.baseFeePerGas, miner: b.miner,
    transactionsRoot: b.transactionsRoot, receiptsRoot: b.receiptsRoot, logsBloom: b.logsBloom, withdrawalsRoot: b.withdrawalsRoot,
    blobGasUsed: b.blobGasUsed, excessBlobGas: b.excessBlobGas, transactions: b.transactions.map((x) => x.hash) };
});
await t.step("feeHistory", () => client.getFeeHistory({ blockCount: 4, rewardPercentiles: [10, 50, 90] }));
await t.step("proof", async () => {
  const p = await client.getProof({ address: probe, storageKeys: [slot0] });
  return { balance: p.balance, nonce: p.nonce, codeHash: p.codeHash, storageHash: p.storageHash,
    storage: p.storageProof.map((s) => ({ key: s.key, value: s.value, proof: s.proof })) };
}, failure);

const fees = { maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n, gas: 21_000n };
await t.step("insufficientFunds", () => wallet(pauper).sendTransaction({ to: bob.address, value: 1n, nonce: 0, ...fees }), failure);
await t.step("nonceTooLow", () => aliceWallet.sendTransaction({ to: bob.address, value: 1n, nonce: 0, ...fees }), failure);
await t.step("intrinsicGasTooLow", () => aliceWallet.sendTransaction({ to: bob.address, value: 1n, ...fees, gas: 20_000n }), failure);
await t.step("tipAboveFeeCap", async () => {
  // viem refuses this itself; sign it and send the raw bytes so the node has to.
  const nonce = await client.getTransactionCount({ address: alice.address });
  const raw = await alice.signTransaction({ chainId: 31415, type: "eip1559", to: bob.address, value: 1n, nonce, gas: 21_000n, maxFeePerGas: 10n ** 9n, maxPriorityFeePerGas: 2n * 10n ** 9n });
  return client.sendRawTransaction({ serializedTransaction: raw });
}, failure);
await t.step("unknownMethod", () => client.request({ method: "eth_fooBar", params: [] }), failure);

t.print();
