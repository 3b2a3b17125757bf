#!/usr/bin/env python3
"""Reads `cargo ... --no-run --message-format=json` on stdin and prints `name path` for each
bench executable it built (or found fresh), so that scripts run exactly that build's binary
rather than the newest file in target/release/deps (another tree's build may be newer)."""
import json
import sys

for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and "bench" in message["target"]["kind"]:
        print(message["target"]["name"], message["executable"])
