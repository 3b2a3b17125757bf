"""Drives the run gateway with the `openai` package, as an agent in a sandbox would.

usage: openai_client.py BASE_URL TOKEN
Prints one JSON object with what each step saw; exits non-zero on anything unexpected.
"""

import json
import sys

import openai

base_url, token = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0)
messages = [{"role": "user", "content": "Say hello to the gateway"}]
seen = {}

# Not streaming, under the OpenRouter name of an allowlisted model.
answer = client.chat.completions.create(model="deepseek/deepseek-v3.2", messages=messages, max_tokens=64)
seen["model"] = answer.model
seen["content"] = answer.choices[0].message.content
seen["usage"] = answer.usage.model_dump() if answer.usage else None

# Streaming without asking for usage: no usage chunk reaches the client.
text, usage_chunks = [], 0
for chunk in client.chat.completions.create(model="deepseek-ai/DeepSeek-V3.2-TEE", messages=messages, stream=True):
    if chunk.usage is not None:
        usage_chunks += 1
    for choice in chunk.choices:
        if choice.delta.content:
            text.append(choice.delta.content)
seen["stream_text"] = "".join(text)
seen["stream_usage_chunks"] = usage_chunks

# Streaming with usage asked for: the last chunk carries it.
last = None
for chunk in client.chat.completions.create(
    model="deepseek-ai/DeepSeek-V3.2-TEE", messages=messages, stream=True, stream_options={"include_usage": True}
):
    last = chunk
seen["stream_final_usage"] = last.usage.model_dump() if last is not None and last.usage else None

# A model off the allowlist.
try:
    client.chat.completions.create(model="gpt-4o", messages=messages)
    seen["unlisted"] = "accepted"
except openai.BadRequestError as e:
    seen["unlisted"] = {"status": e.status_code, "code": e.code}

# Spend until the run's cap refuses.
calls = 0
while calls < 500:
    try:
        client.chat.completions.create(model="deepseek/deepseek-v3.2", messages=messages)
        calls += 1
    except openai.APIStatusError as e:
        seen["cap"] = {"status": e.status_code, "code": e.code, "type": e.type, "message": e.message, "calls": calls}
        break

# The models the run may use.
seen["models"] = [m.id for m in client.models.list()]
print(json.dumps(seen))
