"""Drives oro-sdk's generated validator client through a run's whole life, the way ORO's
public validator (ORO-AI/oro, subnet/validator/backend_client.py) calls it: a
BittensorAuthClient with raise_on_unexpected_status=False, `sync_detailed` everywhere, a
claim body of service versions and resource figures, the code fetched with a plain unsigned
GET, heartbeats, progress, the problems and upload calls, complete, and the public race route.

Every answer must parse into the SDK's own models (a wrong shape raises here, as it would
in the validator). Run by server/tests/api/oro_clients.rs with the venv of one release:

    python validator_life.py BASE_URL

Environment: HOME holds the wallets `validator` and `other` (hotkey `h1`), both in the
validator set; ORO_EXPECT is JSON {"agent_code": ..., "first_provider": "chutes"}: the
queue holds two runs, a Chutes run first, then an OpenRouter run.
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
from oro_sdk.api.public import get_inference_models, get_race_history, health_check
from oro_sdk.api.validator import claim_work, complete_run, get_run_problems, heartbeat, presign_upload, update_progress
from oro_sdk.types import UNSET

SDK = tuple(int(p) for p in version("oro-sdk").split("."))
BASE = sys.argv[1]
EXPECT = json.loads(os.environ["ORO_EXPECT"])
HOME = os.environ["HOME"]


def client(name):
    wallet = Wallet(name=name, hotkey="h1", path=f"{HOME}/.bittensor/wallets")
    return BittensorAuthClient(base_url=BASE, wallet=wallet, timeout=httpx.Timeout(30), raise_on_unexpected_status=False)


def check(cond, what, response=None):
    if not cond:
        extra = f" (HTTP {response.status_code}: {response.content[:400]!r})" if response is not None else ""
        raise AssertionError(f"oro-sdk {version('oro-sdk')}: {what}{extra}")


def report_body():
    """What ORO's validator sends with a claim and each heartbeat."""
    versions = {"validator": "sha256:abcdef0123", "proxy": "sha256:0123abcdef"}
    if SDK < (4,):
        cls, versions = m.HeartbeatRequest, m.HeartbeatRequestServiceVersionsType0.from_dict(versions)
    else:
        cls, versions = m.ClaimWorkRequest, m.ClaimWorkRequestServiceVersionsType0.from_dict(versions)
    return cls(service_versions=versions, cpu_pct=3.1, ram_pct=40.0, disk_pct=55.2, docker_container_count=4)


def heartbeat_body():
    return m.HeartbeatRequest(service_versions=m.HeartbeatRequestServiceVersionsType0.from_dict({"validator": "sha256:abcdef0123"}), cpu_pct=1.0)


def not_held(response, what):
    """A route of ORO's evaluation backend: a sentence in the SDK's error shape, never a page."""
    check(response.status_code == 501, f"{what} answers 501", response)
    check(response.parsed is None, f"{what} is left unparsed by the SDK", response)
    body = json.loads(response.content)
    check("ORO's evaluation backend" in body["detail"], f"{what} says whose route it is", response)


me, other = client("validator"), client("other")
public = Client(base_url=BASE, timeout=httpx.Timeout(30), raise_on_unexpected_status=False)

# 1. Claim, with the validator's resource report as the body.
claimed = claim_work.sync_detailed(client=me, body=report_body())
check(claimed.status_code == 200 and isinstance(claimed.parsed, m.ClaimWorkResponse), "claim answers a ClaimWorkResponse", claimed)
work = claimed.parsed
run_id = work.eval_run_id
check(isinstance(run_id, uuid.UUID) and isinstance(work.agent_version_id, uuid.UUID), "run and version ids are UUIDs")
if SDK < (4,):
    # ORO's validator fails every run without this ("Miner has no Chutes token").
    token = work.chutes_access_token
    check(isinstance(token, str) and token, "a Chutes run carries chutes_access_token for 1.0.50 validators")
else:
    grant = work.inference_token
    check(isinstance(grant, m.InferenceTokenGrant), f"inference_token parses as InferenceTokenGrant: {grant!r}")
    check(str(grant.provider) == EXPECT["first_provider"], f"the first run is a {EXPECT['first_provider']} run")
    check("chutes_access_token" in work.additional_properties, "newer SDKs keep chutes_access_token aside")
if SDK >= (7,):
    check(work.delivery_id is UNSET or work.delivery_id is None or isinstance(work.delivery_id, str), "delivery_id is optional")

# 2. The code, as ORO's validator downloads it: a plain GET, no headers, the text is agent.py.
url = work.code_download_url
download = httpx.get(url, timeout=30)
check(download.status_code == 200, "the presigned code URL answers a plain GET", download)
check(download.text == EXPECT["agent_code"], "the download is the agent's Python file")
tampered = httpx.get(url[:-2] + ("00" if not url.endswith("00") else "11"), timeout=30)
check(tampered.status_code == 403 and "detail" in tampered.json(), "an altered link is refused in the SDK's error shape", tampered)

# 3. Heartbeat with the report, and (5.0.2 on) without any body.
beat = heartbeat.sync_detailed(eval_run_id=run_id, client=me, body=heartbeat_body())
check(beat.status_code == 200 and isinstance(beat.parsed, m.HeartbeatResponse), "heartbeat answers a HeartbeatResponse", beat)
if SDK >= (5, 0, 2):
    bare = heartbeat.sync_detailed(eval_run_id=run_id, client=me)
    check(bare.status_code == 200 and isinstance(bare.parsed, m.HeartbeatResponse), "a heartbeat without a body is taken", bare)

# 4. The problems and the log upload belong to ORO's backend.
not_held(get_run_problems.sync_detailed(eval_run_id=run_id, client=me), "get_run_problems")
presign = m.PresignUploadRequest(content_length=10, eval_run_id=run_id, problem_id=uuid.uuid4(), content_type="application/gzip")
not_held(presign_upload.sync_detailed(client=me, body=presign), "presign_upload")

# 5. Progress, as the validator's reporter batches it.
update = m.ProblemProgressUpdate(problem_id=uuid.uuid4(), status=m.ProblemStatus.SUCCESS, score=1.0, execution_time=12.5)
progress = update_progress.sync_detailed(eval_run_id=run_id, client=me, body=m.ProgressUpdateRequest(problems=[update]))
check(progress.status_code == 200 and isinstance(progress.parsed, m.ProgressUpdateResponse), "progress answers a ProgressUpdateResponse", progress)

# 6. Another validator touching this run: NOT_RUN_OWNER, as the SDK's own error type.
theirs = heartbeat.sync_detailed(eval_run_id=run_id, client=other, body=heartbeat_body())
check(theirs.status_code == 409 and isinstance(theirs.parsed, m.NotRunOwnerError), "someone else's heartbeat is NotRunOwnerError", theirs)
theirs = complete_run.sync_detailed(eval_run_id=run_id, client=other, body=m.CompleteRunRequest(terminal_status=m.TerminalStatus.FAILED))
check(theirs.status_code == 409 and isinstance(theirs.parsed, m.NotRunOwnerError), "someone else's complete is NotRunOwnerError", theirs)

# 7. Complete with a score, as ORO's validator reports a success.
components = m.CompleteRunRequestScoreComponentsType0.from_dict({"success_rate": 0.5, "total_problems": 2, "successful_problems": 1})
body = m.CompleteRunRequest(terminal_status=m.TerminalStatus.SUCCESS, validator_score=0.5, score_components=components)
done = complete_run.sync_detailed(eval_run_id=run_id, client=me, body=body)
check(done.status_code == 200 and isinstance(done.parsed, m.CompleteRunResponse), "complete answers a CompleteRunResponse", done)
check(done.parsed.eval_run_id == run_id and done.parsed.status == "SUCCESS", "complete names the run and its status")
check(done.parsed.agent_version_became_eligible is True and done.parsed.work_item.is_closed is True, "a success makes the version eligible")

# 8. After completion: RUN_ALREADY_COMPLETE everywhere, and the code link is dead.
again = complete_run.sync_detailed(eval_run_id=run_id, client=me, body=body)
check(again.status_code == 409 and isinstance(again.parsed, m.RunAlreadyCompleteError), "a second complete is RunAlreadyCompleteError", again)
late = heartbeat.sync_detailed(eval_run_id=run_id, client=me, body=heartbeat_body())
check(late.status_code == 409 and isinstance(late.parsed, m.RunAlreadyCompleteError), "a late heartbeat is RunAlreadyCompleteError", late)
late = update_progress.sync_detailed(eval_run_id=run_id, client=me, body=m.ProgressUpdateRequest(problems=[update]))
check(late.status_code == 409 and isinstance(late.parsed, m.RunAlreadyCompleteError), "late progress is RunAlreadyCompleteError", late)
check(httpx.get(url, timeout=30).status_code == 403, "the code link dies with the run")
unknown = heartbeat.sync_detailed(eval_run_id=uuid.uuid4(), client=me, body=heartbeat_body())
check(unknown.status_code == 404 and isinstance(unknown.parsed, m.EvalRunNotFoundError), "an unknown run is EvalRunNotFoundError", unknown)

# 9. The second run (OpenRouter): claimed without a body where the SDK allows it; it fails.
second = claim_work.sync_detailed(client=me) if SDK >= (5, 0, 2) else claim_work.sync_detailed(client=me, body=report_body())
check(second.status_code == 200 and isinstance(second.parsed, m.ClaimWorkResponse), "the second claim answers a ClaimWorkResponse", second)
if SDK < (4,):
    check(second.parsed.chutes_access_token in (UNSET, None), "an OpenRouter run has no chutes_access_token")
else:
    check(str(second.parsed.inference_token.provider) == "openrouter", "the second run is an OpenRouter run")
failed = complete_run.sync_detailed(
    eval_run_id=second.parsed.eval_run_id,
    client=me,
    body=m.CompleteRunRequest(terminal_status=m.TerminalStatus.FAILED, failure_reason="Sandbox exited with code 1"),
)
check(failed.status_code == 200 and isinstance(failed.parsed, m.CompleteRunResponse), "a failure report answers a CompleteRunResponse", failed)
check(failed.parsed.agent_version_became_eligible is False and failed.parsed.work_item.included_success_count == 0, "a failure makes nothing eligible")

# 10. No work left: 204, parsed as None.
empty = claim_work.sync_detailed(client=me, body=report_body())
check(empty.status_code == 204 and empty.parsed is None, "an empty queue answers 204", empty)

# 11. Public routes the validator and its proxy read.
models = get_inference_models.sync_detailed(client=public)
check(models.status_code == 200 and isinstance(models.parsed, m.InferenceModelsResponse) and models.parsed.models, "the model list parses", models)
check(httpx.get(f"{BASE}/v1/public/inference/models").json()["models"], "the proxy's plain GET of the model list has models")
not_held(get_race_history.sync_detailed(client=public, limit=5), "get_race_history")
health = health_check.sync_detailed(client=public)
check(health.status_code == 200 and health.parsed is not None, "health parses", health)

print(json.dumps({"sdk": version("oro-sdk"), "runs": [str(run_id), str(second.parsed.eval_run_id)]}))
