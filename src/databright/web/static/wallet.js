// Browser wallets (EIP-1193): Sign-In with Ethereum, signed comments, and the transactions a
// wallet session sends itself (votes, finalizations, withdrawals, proposals from uploaded files):
// the server prepares each one, the wallet sends it, the server confirms it by hash. A model's
// "try it" pays with a voucher the wallet signs (eth_signTypedData_v4) for the server's quote.
(function () {
  const FLASH = "databright-flash";
  const csrf = () => document.body.dataset.csrf;
  const parse = async (r) => { const j = await r.json(); if (!r.ok) throw new Error(j.error || r.statusText); return j; };
  const get = (url) => fetch(url, { credentials: "same-origin" }).then(parse);
  const post = (url, body) => fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body), credentials: "same-origin",
  }).then(parse);
  const upload = (url, form) => fetch(url, {
    method: "POST", headers: { "X-CSRF-Token": csrf() }, body: new FormData(form), credentials: "same-origin",
  }).then(parse);
  const wallet = () => {
    if (!window.ethereum) throw new Error("No browser wallet found (install one, or sign in with a local account).");
    return window.ethereum;
  };

  function show(message, kind) {
    const box = document.getElementById("wallet-message");
    if (!box) return;
    box.className = `flash ${kind}`;
    box.textContent = message;
    box.hidden = false;
  }

  function reason(e) {
    if (e && e.code === 4001) return "You rejected the request in your wallet.";
    return (e && e.message) || String(e);
  }

  async function siwe(button) {
    const error = document.getElementById("siwe-error");
    try {
      const [address] = await wallet().request({ method: "eth_requestAccounts" });
      const nonce = await get("/api/v1/auth/nonce");
      const message = nonce.message_template.replace("{address}", address);
      const signature = await wallet().request({ method: "personal_sign", params: [message, address] });
      await post("/api/v1/auth/siwe", { message, signature });
      window.location = button.dataset.next || "/dashboard";
    } catch (e) { error.textContent = reason(e); error.hidden = false; }
  }

  async function signComment(form, event) {
    if (form.dataset.wallet !== "yes" || form.signature.value) return;
    event.preventDefault();
    try {
      const [session, chain] = await Promise.all([get("/api/v1/session"), get("/api/v1/chain")]);
      const date = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
      const message = `DataBright comment on proposal ${form.dataset.proposal} (chain ${chain.chain_id})\nAuthor: ${session.address}\nDate: ${date}\n\n${form.body.value.trim()}`;
      form.signature.value = await wallet().request({ method: "personal_sign", params: [message, session.address] });
      form.date.value = date;
      form.submit();
    } catch (e) { show(reason(e), "error"); }
  }

  // The details a dataset asks contributors for, signed as the server builds the text (web/_details.py).
  async function signDetails(form, session, chain) {
    show("Sign your contributor details in your wallet…", "info");
    const date = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const lines = [...form.querySelectorAll("[name=detail]")].map((i) => `${i.dataset.field}: ${i.value.trim()}`);
    const message = `DataBright contributor details for dataset ${form.dataset.dataset} (chain ${chain.chain_id})\n` +
      `Contributor: ${session.address}\nDate: ${date}\n\n${lines.join("\n")}`;
    form.details_signature.value = await wallet().request({ method: "personal_sign", params: [message, session.address] });
    form.details_date.value = date;
  }

  // The wallet must hold the signed-in account and be on this node's chain (added to it if unknown).
  async function ready(address, chain) {
    const accounts = await wallet().request({ method: "eth_requestAccounts" });
    if (!accounts.some((a) => a.toLowerCase() === address.toLowerCase())) {
      throw new Error(`Your wallet is on another account; switch it to ${address}.`);
    }
    if (parseInt(await wallet().request({ method: "eth_chainId" }), 16) === chain.chain_id) return;
    try {
      await wallet().request({ method: "wallet_switchEthereumChain", params: [{ chainId: chain.chain_id_hex }] });
    } catch (e) {
      if (e.code !== 4902 || !chain.rpc_url) throw new Error(`Switch your wallet to chain ${chain.chain_id}: ${reason(e)}`);
      await wallet().request({
        method: "wallet_addEthereumChain",
        params: [{ chainId: chain.chain_id_hex, chainName: `DataBright (chain ${chain.chain_id})`, rpcUrls: [chain.rpc_url],
                   nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }],
      });
    }
  }

  async function sendAndConfirm(tx, what) {
    show(`Confirm ${what} in your wallet…`, "info");
    const hash = await wallet().request({ method: "eth_sendTransaction", params: [tx] });
    show(`Sent ${hash.slice(0, 10)}…; waiting for it to be mined…`, "info");
    return post("/api/v1/transactions", { tx_hash: hash });
  }

  async function sendTransaction(form, button) {
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const [session, chain] = await Promise.all([get("/api/v1/session"), get("/api/v1/chain")]);
      await ready(session.address, chain);
      let result;
      if (button.dataset.upload) {
        // A proposal is two transactions: a commitment that binds the sender, then,
        // once it is mined, the reveal that carries the bond.
        if (form.querySelector("[name=detail]")) await signDetails(form, session, chain);
        show("Uploading and checking the batch…", "info");
        const step = await upload(button.dataset.tx, form);
        await sendAndConfirm(step.commit, "the commitment (1 of 2)");
        show("Committed; preparing the reveal…", "info");
        result = await sendAndConfirm(await post(step.reveal_url, step.reveal), "the reveal with the bond (2 of 2)");
      } else if (button.dataset.form) {
        show("Preparing the transaction…", "info");
        const fields = Object.fromEntries(new FormData(form));
        delete fields.csrf_token;
        result = await sendAndConfirm(await post(button.dataset.tx, fields), "the transaction");
      } else {
        show("Preparing the transaction…", "info");
        result = await sendAndConfirm(await post(button.dataset.tx, JSON.parse(button.dataset.body || "{}")),
                                      "the transaction");
      }
      sessionStorage.setItem(FLASH, JSON.stringify(["ok", result.message]));
      if (result.url) window.location = result.url; else window.location.reload();
    } catch (e) {
      show(reason(e), "error");
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // "0.01" ETH as a decimal string of wei, exactly (wei amounts pass Number's 2**53).
  function weiOf(text) {
    const value = text.trim();
    if (!value) return null;
    if (!/^\d*(\.\d{0,18})?$/.test(value) || value === ".") throw new Error(`The deposit ${value} is not an amount of ETH.`);
    const [whole, fraction = ""] = value.split(".");
    return (BigInt(whole || "0") * 10n ** 18n + BigInt(fraction.padEnd(18, "0"))).toString();
  }

  async function tryModel(form) {
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const [session, chain] = await Promise.all([get("/api/v1/session"), get("/api/v1/chain")]);
      await ready(session.address, chain);
      const items = form.dataset.input === "image" ? form.files.files.length
        : form.rows.value.split("\n").filter((line) => line.trim()).length - 1;
      const url = `/api/v1/models/${form.dataset.model}/try`;
      show("Asking for a quote…", "info");
      let quote = await post(`${url}/quote`, { items, deposit_wei: weiOf(form.deposit_eth.value) });
      if (quote.open_tx) {
        await sendAndConfirm(quote.open_tx, "the channel's deposit");
        quote = await post(`${url}/quote`, { items });
      }
      const data = new FormData(form);
      data.delete("csrf_token");
      data.delete("deposit_eth");
      if (quote.typed_data) {
        show("Sign the payment voucher in your wallet…", "info");
        const signature = await wallet().request({
          method: "eth_signTypedData_v4", params: [session.address, JSON.stringify(quote.typed_data)],
        });
        data.set("voucher", `${quote.voucher_prefix}:${signature}`);
      }
      show("Predicting…", "info");
      await fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf() }, body: data, credentials: "same-origin" })
        .then(parse);
      window.location.hash = "try";
      window.location.reload();
    } catch (e) {
      show(reason(e), "error");
      button.disabled = false;
    }
  }

  document.addEventListener("click", (e) => { if (e.target.id === "siwe") siwe(e.target); });
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.classList.contains("comment-form")) signComment(form, e);
    else if (form.classList.contains("try-form") && form.dataset.wallet === "yes") {
      e.preventDefault();
      tryModel(form);
    }
    else if (form.dataset.wallet === "yes" && e.submitter && e.submitter.dataset.tx) {
      e.preventDefault();
      sendTransaction(form, e.submitter);
    }
  });
  document.addEventListener("DOMContentLoaded", () => {
    const kept = sessionStorage.getItem(FLASH);
    if (kept) { sessionStorage.removeItem(FLASH); const [kind, message] = JSON.parse(kept); show(message, kind); }
  });
})();
