// The browser side of wallet sign-in and copying, called from the hydrated app.
// Wallet extensions (polkadot{.js}, Talisman, SubWallet) inject themselves into
// window.injectedWeb3; signRaw with type "bytes" signs <Bytes>message</Bytes>.
(function () {
  const APP_NAME = "ORO inference providers";
  function toHex(text) {
    const bytes = new TextEncoder().encode(text);
    let hex = "0x";
    for (const b of bytes) hex += b.toString(16).padStart(2, "0");
    return hex;
  }
  async function enable(id) {
    const injected = (window.injectedWeb3 || {})[id];
    if (!injected) throw new Error("The wallet " + id + " is not installed.");
    return injected.enable(APP_NAME);
  }
  window.oroWallet = {
    installed() {
      return Object.keys(window.injectedWeb3 || {});
    },
    async accounts(id) {
      const extension = await enable(id);
      const accounts = await extension.accounts.get();
      return accounts.map((a) => ({ address: a.address, name: a.name || "" }));
    },
    async sign(id, address, message) {
      const extension = await enable(id);
      if (!extension.signer || !extension.signer.signRaw) throw new Error("This wallet cannot sign messages.");
      const result = await extension.signer.signRaw({ address, data: toHex(message), type: "bytes" });
      return result.signature;
    },
    async copy(text) {
      if (navigator.clipboard && navigator.clipboard.writeText) {
        await navigator.clipboard.writeText(text);
        return true;
      }
      throw new Error("Copying is not available in this browser.");
    },
  };
})();
