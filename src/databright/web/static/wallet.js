// Browser-wallet (EIP-1193) sign-in with Ethereum, and signing comments with the wallet.
(function () {
  const csrf = () => document.body.dataset.csrf;
  const post = (url, body) => fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body), credentials: "same-origin",
  }).then(async (r) => { const j = await r.json(); if (!r.ok) throw new Error(j.error || r.statusText); return j; });

  async function siwe(button) {
    const error = document.getElementById("siwe-error");
    try {
      if (!window.ethereum) throw new Error("No browser wallet found (install one, or sign in with a local account).");
      const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
      const nonce = await (await fetch("/api/v1/auth/nonce", { credentials: "same-origin" })).json();
      const message = nonce.message_template.replace("{address}", window.ethereumChecksum ? window.ethereumChecksum(address) : address);
      const signature = await window.ethereum.request({ method: "personal_sign", params: [message, address] });
      await post("/api/v1/auth/siwe", { message, signature });
      window.location = button.dataset.next || "/dashboard";
    } catch (e) { error.textContent = e.message; error.hidden = false; }
  }

  async function signComment(form, event) {
    if (form.dataset.wallet !== "yes" || form.signature.value) return;
    event.preventDefault();
    const session = await (await fetch("/api/v1/session", { credentials: "same-origin" })).json();
    const date = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const chain = parseInt(await window.ethereum.request({ method: "eth_chainId" }), 16);
    const message = `DataBright comment on proposal ${form.dataset.proposal} (chain ${chain})\nAuthor: ${session.address}\nDate: ${date}\n\n${form.body.value.trim()}`;
    form.signature.value = await window.ethereum.request({ method: "personal_sign", params: [message, session.address] });
    form.date.value = date;
    form.submit();
  }

  document.addEventListener("click", (e) => { if (e.target.id === "siwe") siwe(e.target); });
  document.addEventListener("submit", (e) => { if (e.target.classList.contains("comment-form")) signComment(e.target, e); });
})();
