"""Drives oro-sdk's generated miner client (4.0.1 and newer) through the routes its `oro` CLI
does not reach: agents and versions, one provider's status, the legacy Chutes status, a
refused credential, race selection and the deep health check. Every answer must parse into
the SDK's own models. Run by server/tests/api/oro_clients.rs:

    python miner_client.py BASE_URL

HOME holds the wallet `miner` (hotkey `h1`), which has submitted one agent named in
ORO_EXPECT ({"agent_name": ...}) and has OpenRouter connected.
"""

import json
import os
import sys
import uuid
from importlib.metadata import version

import httpx
from bittensor_wallet import Wallet

import oro_sdk.models as m
from oro_sdk import BittensorAuthClient, Client
from oro_sdk.api.miner import (
    clear_race_selection,
    get_chutes_auth_status,
    get_inference_auth_status_one,
    get_owned_agent_version_status,
    list_agent_versions,
    list_inference_auth,
    list_miner_agents,
    set_race_selection,
    store_inference_credential,
)
from oro_sdk.api.public import deep_health_check

BASE = sys.argv[1]
EXPECT = json.loads(os.environ["ORO_EXPECT"])
wallet = Wallet(name="miner", hotkey="h1", path=f"{os.environ['HOME']}/.bittensor/wallets")
me = BittensorAuthClient(base_url=BASE, wallet=wallet, timeout=httpx.Timeout(30), raise_on_unexpected_status=False)


def check(cond, what, response=None):
    if not cond:
        extra = f" (HTTP {response.status_code}: {response.content[:400]!r})" if response is not None else ""
        raise AssertionError(f"oro-sdk {version('oro-sdk')}: {what}{extra}")


agents = list_miner_agents.sync_detailed(client=me)
check(agents.status_code == 200 and isinstance(agents.parsed, m.MinerAgentsResponse), "agents parse", agents)
mine = [a for a in agents.parsed.agents if a.agent_name == EXPECT["agent_name"]]
check(len(mine) == 1 and isinstance(mine[0].agent_id, uuid.UUID), "the submitted agent is listed")
latest = mine[0].latest_version
check(isinstance(latest, m.AgentLatestVersion) and latest.version_number == 1, "its latest version is version 1")
check(str(latest.state) == "QUEUED", f"a queued evaluation reads QUEUED, not {latest.state}")

versions = list_agent_versions.sync_detailed(agent_id=mine[0].agent_id, client=me)
check(versions.status_code == 200 and [v.agent_version_id for v in versions.parsed] == [latest.agent_version_id], "versions parse", versions)
missing = list_agent_versions.sync_detailed(agent_id=uuid.uuid4(), client=me)
check(missing.status_code == 404 and isinstance(missing.parsed, m.AgentNotFoundError), "an unknown agent is AgentNotFoundError", missing)

status = get_owned_agent_version_status.sync_detailed(agent_version_id=latest.agent_version_id, client=me)
check(status.status_code == 200 and isinstance(status.parsed, m.AgentVersionStatus), "version status parses", status)
check(status.parsed.agent_name == EXPECT["agent_name"] and status.parsed.is_closed is False, "version status names the agent")
missing = get_owned_agent_version_status.sync_detailed(agent_version_id=uuid.uuid4(), client=me)
check(missing.status_code == 404 and isinstance(missing.parsed, m.AgentVersionNotFoundError), "an unknown version is AgentVersionNotFoundError", missing)

listing = list_inference_auth.sync_detailed(client=me)
check(listing.status_code == 200 and isinstance(listing.parsed, m.InferenceAuthListResponse), "inference-auth list parses", listing)
one = get_inference_auth_status_one.sync_detailed(provider="openrouter", client=me)
check(one.status_code == 200 and isinstance(one.parsed, m.InferenceAuthStatusResponse) and one.parsed.connected, "one provider parses", one)
bad = get_inference_auth_status_one.sync_detailed(provider="anthropic", client=me)
check(bad.status_code == 422 and isinstance(bad.parsed, m.HTTPValidationError), "an unknown provider is FastAPI's 422", bad)
legacy = get_chutes_auth_status.sync_detailed(client=me)
check(legacy.status_code == 200 and isinstance(legacy.parsed, m.ChutesAuthStatusResponse) and legacy.parsed.connected is False, "legacy status parses", legacy)

truncated = store_inference_credential.sync_detailed(provider="openrouter", client=me, body=m.StoreInferenceCredentialRequest(credential="sk-or-v1-abc"))
check(truncated.status_code == 422 and isinstance(truncated.parsed, m.HTTPValidationError), "a truncated key is FastAPI's 422 list", truncated)
check("truncated" in truncated.parsed.detail[0].msg, "the 422 says what is wrong")

pin = set_race_selection.sync_detailed(client=me, body=m.MinerRaceSelectionRequest(agent_version_id=latest.agent_version_id))
check(pin.status_code == 501 and "ORO's evaluation backend" in json.loads(pin.content)["detail"], "race selection is ORO's backend's", pin)
unpin = clear_race_selection.sync_detailed(client=me)
check(unpin.status_code == 501 and unpin.parsed is None, "clearing race selection is ORO's backend's", unpin)

deep = deep_health_check.sync_detailed(client=Client(base_url=BASE, raise_on_unexpected_status=False))
check(deep.status_code == 200, "deep health answers 200", deep)

unknown = httpx.get(f"{BASE}/v1/miner/no-such-route")
check(unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}, "an unknown API path is FastAPI's 404", unknown)
print(json.dumps({"sdk": version("oro-sdk"), "ok": True}))
