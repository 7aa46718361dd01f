// Compiles a Solidity file with solc-js and prints {abi, bytecode} as JSON.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import solc from "solc";

const [path, name] = process.argv.slice(2);
const input = {
  language: "Solidity",
  sources: { [basename(path)]: { content: readFileSync(path, "utf8") } },
  settings: {
    evmVersion: "prague",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const contract = output.contracts[basename(path)][name];
console.log(JSON.stringify({ abi: contract.abi, bytecode: "0x" + contract.evm.bytecode.object }));
