"""A client generated from our OpenAPI document, as oro-sdk's is generated from ORO's.

    python generated_client.py BASE_URL GATEWAY_URL

Run with the interpreter of the newest oro-sdk release's venv (it has oro_sdk, httpx, attrs and
bittensor_wallet) by server/tests/api/openapi.rs. Environment:
  ORO_GENERATOR   the openapi-python-client executable (PyPI)
  ORO_WORKDIR     an empty directory for the document and the generated package
  HOME            holds the wallets `miner` and `validator` (hotkey `h1`); `validator` is in the
                  validator set
  ORO_EXPECT      JSON {"openrouter_key": "...", "model_count": 13, "agent_code": "..."}

1. Generates a client from GET /openapi.json with openapi-python-client.
2. Compares its operations with those of the installed oro-sdk's `api/` (method, path, body
   model names): a route oro-sdk has must be ours with the same shape, or be named in
   oro_backend_routes.txt as ORO's backend's own. The list must not go stale either way.
3. Drives the generated client against the server: the public model list, a signed status,
   connect, submit, a bearer session, and a validator's claim; every answer parses into the
   generated models.
Prints one JSON line of what it saw.
"""

import importlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import oro_sdk
from bittensor_wallet import Wallet
from oro_sdk.bittensor_auth import generate_auth_headers

BASE, GATEWAY = sys.argv[1], sys.argv[2]
WORK = Path(os.environ["ORO_WORKDIR"])
EXPECT = json.loads(os.environ["ORO_EXPECT"])
HERE = Path(__file__).resolve().parent


def check(cond, what, response=None):
    if not cond:
        extra = f" (HTTP {response.status_code}: {response.content[:400]!r})" if response is not None else ""
        raise AssertionError(f"{what}{extra}")


# 1. Generate.
document = httpx.get(f"{BASE}/openapi.json", timeout=30)
check(document.status_code == 200, "GET /openapi.json", document)
(WORK / "openapi.json").write_bytes(document.content)
(WORK / "config.yml").write_text("package_name_override: oro_generated\nproject_name_override: oro-generated\npost_hooks: []\n")
generated = subprocess.run(
    [
        os.environ["ORO_GENERATOR"],
        "generate",
        "--path", str(WORK / "openapi.json"),
        "--output-path", str(WORK / "oro_generated"),
        "--meta", "none",
        "--config", str(WORK / "config.yml"),
    ],
    capture_output=True,
    text=True,
)
check(generated.returncode == 0, f"openapi-python-client failed:\n{generated.stdout}\n{generated.stderr}")
# A warning means a piece of the document could not become code: a defect of the document.
warnings = [line for line in (generated.stdout + generated.stderr).splitlines() if line.strip() and "ruff" not in line
            and "Skipping Integration" not in line and not line.startswith("Generating")
            and "Warning(s) encountered" not in line and "please open an issue" not in line]
check(not warnings, "openapi-python-client warned:\n" + "\n".join(warnings))
sys.path.insert(0, str(WORK))


# 2. Compare operations.
CALL = re.compile(r'"method": "(\w+)",\s*"url": f?"([^"]*)"')
BODY = re.compile(r"def _get_kwargs\((.*?)\)\s*->", re.S)
BODY_TYPE = re.compile(r"body: ([\w\[\] |]+)")


def operations(api_dir: Path):
    """{(METHOD, path): (module, sorted body model names)} of a generated client's api/."""
    found = {}
    for module in sorted(api_dir.glob("*/*.py")):
        if module.name == "__init__.py":
            continue
        text = module.read_text()
        call = CALL.search(text)
        check(call is not None, f"no request in {module}")
        method, path = call.group(1).upper(), call.group(2)
        signature = BODY.search(text)
        bodies = set()
        if signature:
            for annotation in BODY_TYPE.findall(signature.group(1)):
                bodies |= {t.strip() for t in annotation.split("|") if t.strip() not in ("Unset", "None", "")}
        found[(method, path)] = (f"{module.parent.name}/{module.stem}", sorted(bodies))
    return found


theirs = operations(Path(oro_sdk.__file__).parent / "api")
ours = operations(WORK / "oro_generated" / "api")
backend_only = set()
for line in (HERE / "oro_backend_routes.txt").read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
        method, path = line.split()
        backend_only.add((method, path))

problems = []
for key, (module, bodies) in sorted(theirs.items()):
    if key in ours:
        if ours[key][1] != bodies:
            problems.append(f"{key[0]} {key[1]}: oro-sdk sends {bodies or 'no body'}, ours {ours[key][1] or 'no body'} ({module})")
    elif key not in backend_only:
        problems.append(f"{key[0]} {key[1]}: in oro-sdk ({module}), missing from our document and not listed as ORO's backend's")
for key in sorted(backend_only):
    if key in ours:
        problems.append(f"{key[0]} {key[1]}: listed as ORO's backend's, but our document has it")
    if key not in theirs:
        problems.append(f"{key[0]} {key[1]}: listed as ORO's backend's, but oro-sdk {oro_sdk.__version__} no longer has it")
check(not problems, "the generated client and oro-sdk disagree:\n  " + "\n  ".join(problems))
shared = sorted(k for k in theirs if k in ours)


# 3. Drive the generated client.
gen = importlib.import_module("oro_generated")
from oro_generated.api.auth import create_session_endpoint, request_challenge  # noqa: E402
from oro_generated.api.miner import list_inference_auth, store_inference_credential, submit_agent  # noqa: E402
from oro_generated.api.public import get_inference_models  # noqa: E402
from oro_generated.api.validator import claim_work  # noqa: E402
from oro_generated.api.gateway import list_run_models  # noqa: E402
from oro_generated import models as gm  # noqa: E402
from oro_generated.types import File  # noqa: E402

HOME = os.environ["HOME"]


def wallet(name):
    return Wallet(name=name, hotkey="h1", path=f"{HOME}/.bittensor/wallets")


def signed(name):
    """The generated client, with the four signed headers added to each request (fresh nonce)."""
    w = wallet(name)

    def sign(request: httpx.Request):
        request.headers.update(generate_auth_headers(w, str(uuid.uuid4())))

    return gen.Client(base_url=BASE, timeout=httpx.Timeout(30), httpx_args={"event_hooks": {"request": [sign]}})


public = gen.Client(base_url=BASE, timeout=httpx.Timeout(30))
models = get_inference_models.sync_detailed(client=public, provider=gm.Provider.OPENROUTER)
check(models.status_code == 200 and isinstance(models.parsed, gm.ModelList), "public models", models)
check(len(models.parsed.models) == EXPECT["model_count"], f"public models: {len(models.parsed.models)}", models)
check(all("/" in m for m in models.parsed.models), "OpenRouter names", models)

miner = signed("miner")
empty = list_inference_auth.sync_detailed(client=miner)
check(empty.status_code == 200 and isinstance(empty.parsed, gm.InferenceAuthList) and empty.parsed.providers == [], "status before connect", empty)

connected = store_inference_credential.sync_detailed(
    "openrouter", client=miner, body=gm.StoreInferenceCredentialRequest(credential=EXPECT["openrouter_key"])
)
check(connected.status_code == 200 and isinstance(connected.parsed, gm.ConnectionChanged), "connect", connected)
check(connected.parsed.default_provider == gm.Provider.OPENROUTER, "default after connect", connected)
check(EXPECT["openrouter_key"].encode() not in connected.content, "the key echoed back", connected)

refused = store_inference_credential.sync_detailed("openrouter", client=miner, body=gm.StoreInferenceCredentialRequest(credential="nope"))
check(refused.status_code == 422 and isinstance(refused.parsed, gm.HTTPValidationError) and refused.parsed.detail[0].loc[-1] == "credential", "a malformed key refused", refused)

code = EXPECT["agent_code"].encode()
submitted = submit_agent.sync_detailed(
    client=miner, body=gm.BodySubmitAgent(agent_name="generated-agent", file=File(payload=code, file_name="agent.py", mime_type="text/x-python"))
)
check(submitted.status_code == 200 and isinstance(submitted.parsed, gm.SubmitAnswer), "submit", submitted)
run_id = submitted.parsed.eval_run_id
check(isinstance(run_id, str) and run_id, "submit names the run", submitted)

# A bearer session, opened through the generated auth operations.
challenge = request_challenge.sync_detailed(client=public, body=gm.ChallengeRequest(hotkey=wallet("miner").hotkey.ss58_address))
check(challenge.status_code == 200 and isinstance(challenge.parsed, gm.ChallengeAnswer), "challenge", challenge)
signature = "0x" + wallet("miner").hotkey.sign(challenge.parsed.challenge.encode()).hex()
session = create_session_endpoint.sync_detailed(
    client=public,
    body=gm.SessionRequest(hotkey=wallet("miner").hotkey.ss58_address, challenge=challenge.parsed.challenge, signature=signature),
)
check(session.status_code == 200 and isinstance(session.parsed, gm.SessionAnswer), "session", session)
bearer = gen.AuthenticatedClient(base_url=BASE, token=session.parsed.session_token, timeout=httpx.Timeout(30))
status = list_inference_auth.sync_detailed(client=bearer)
check(status.status_code == 200 and [p.provider for p in status.parsed.providers] == [gm.Provider.OPENROUTER], "status by session", status)

# The validator claims the run and gets a capped credential for it.
validator = signed("validator")
claim = claim_work.sync_detailed(client=validator, body=gm.ClaimWorkRequest(cpu_pct=2.0, ram_pct=30.0))
check(claim.status_code == 200 and isinstance(claim.parsed, gm.ClaimWorkResponse), "claim", claim)
check(claim.parsed.eval_run_id == run_id, f"claimed {claim.parsed.eval_run_id}, submitted {run_id}", claim)
token = claim.parsed.inference_token
check(token.provider == gm.Provider.OPENROUTER and token.access_token, "the claim's inference token", claim)
again = claim_work.sync_detailed(client=validator, body=gm.ClaimWorkRequest())
check(again.status_code == 204, "nothing else queued", again)

# A miner is not a validator: the document's 403 is what comes.
not_validator = claim_work.sync_detailed(client=miner, body=gm.ClaimWorkRequest())
check(not_validator.status_code == 403, "a miner's claim", not_validator)

# The gateway's own server entry, where the document puts it: a made-up run token is refused.
gateway = gen.AuthenticatedClient(base_url=GATEWAY, token="oro-run-" + "0" * 40, timeout=httpx.Timeout(30))
refused_token = list_run_models.sync_detailed(client=gateway)
check(refused_token.status_code == 401 and b"invalid_run_token" in refused_token.content, "gateway with a made-up token", refused_token)

print(json.dumps({"shared_operations": len(shared), "ours": len(ours), "theirs": len(theirs), "backend_only": len(backend_only),
                  "eval_run_id": run_id, "models": len(models.parsed.models)}))
