"""schemathesis hooks: every generated request is signed as a real client signs it (the four
signed-request headers, a fresh nonce each time), by the wallet named in ORO_ST_WALLET under
$HOME/.bittensor/wallets (hotkey `h1`), so that the miner and validator routes are exercised
past authentication. Loaded by server/tests/api/openapi.rs through SCHEMATHESIS_HOOKS."""

import os
import time
import uuid

import schemathesis
from bittensor_wallet import Wallet

WALLET = Wallet(name=os.environ["ORO_ST_WALLET"], hotkey="h1", path=os.path.join(os.environ["HOME"], ".bittensor", "wallets"))


@schemathesis.auth()
class SignedRequests:
    def get(self, case, ctx):
        return WALLET

    def set(self, case, wallet, ctx):
        hotkey = wallet.hotkey.ss58_address
        timestamp, nonce = str(int(time.time())), str(uuid.uuid4())
        signature = "0x" + wallet.hotkey.sign(f"{hotkey}:{timestamp}:{nonce}".encode()).hex()
        case.headers = dict(case.headers or {})
        case.headers.update({"X-Hotkey": hotkey, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signature})
