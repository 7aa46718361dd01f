// What every client script shares: its inputs, raw JSON-RPC, the transcript.
export const url = process.env.RPC_URL;
export const keys = JSON.parse(process.env.KEYS);
export const artifact = JSON.parse(process.env.ARTIFACT);

let nextId = 1;

/** One raw JSON-RPC call; returns {result} or {error: {code}} (messages differ between nodes). */
export async function raw(method, params = []) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
  });
  const body = await response.json();
  return "error" in body ? { error: { code: body.error.code } } : { result: body.result };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check()` is true (or 10 s passed); returns whether it became true. */
export async function until(check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(25);
  }
  return false;
}

/** JSON with bigints as decimal strings. */
export function plain(value) {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

/** A transcript: named steps, each a value or the error it raised; printed at the end. */
export class Transcript {
  constructor() {
    this.steps = {};
  }

  async step(name, fn, describeError) {
    try {
      this.steps[name] = plain(await fn());
    } catch (error) {
      this.steps[name] = { threw: describeError ? plain(describeError(error)) : String(error) };
    }
  }

  print() {
    process.stdout.write(JSON.stringify(this.steps));
  }
}
