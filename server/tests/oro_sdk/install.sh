#!/usr/bin/env bash
# Installs every oro-sdk release of versions.txt into .venv-oro/<version>, each with only its
# own oro_sdk: the shared dependencies (bittensor-wallet, httpx, ...) live once in
# .venv-oro/base and reach each venv through a .pth line. Skips what is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venvs="$root/.venv-oro"
newest="$(grep -v '^#' "$here/versions.txt" | awk 'NF {v=$1} END {print v}')"
mkdir -p "$venvs"
if ! "$venvs/base/bin/python" -c 'import bittensor_wallet, httpx, attrs, dateutil, bittensor_auth' 2>/dev/null; then
  echo "installing oro-sdk's dependencies into .venv-oro/base"
  python3 -m venv "$venvs/base"
  "$venvs/base/bin/pip" install -q "oro-sdk[bittensor]==$newest"
  "$venvs/base/bin/pip" uninstall -q -y oro-sdk
fi
# The `openai` package, the client most agents use, drives the run gateway in its own venv.
if ! "$venvs/openai/bin/python" -c 'import openai' 2>/dev/null; then
  echo "installing the openai package into .venv-oro/openai"
  python3 -m venv "$venvs/openai"
  "$venvs/openai/bin/pip" install -q openai
fi
# openapi-python-client (the generator oro-sdk's own client comes from) makes a client from our
# /openapi.json in server/tests/api/openapi.rs.
if ! "$venvs/openapi/bin/openapi-python-client" --version 2>/dev/null | grep -q " 0.29.1"; then
  echo "installing openapi-python-client into .venv-oro/openapi"
  python3 -m venv "$venvs/openapi"
  "$venvs/openapi/bin/pip" install -q "openapi-python-client==0.29.1"
fi
# schemathesis checks every answer against the document (server/tests/api/openapi.rs); it signs
# requests with bittensor_wallet from the shared venv.
if ! "$venvs/schemathesis/bin/schemathesis" --version 2>/dev/null | grep -q " 4.32.5"; then
  echo "installing schemathesis into .venv-oro/schemathesis"
  python3 -m venv "$venvs/schemathesis"
  "$venvs/schemathesis/bin/pip" install -q "schemathesis==4.32.5"
fi
base_site="$("$venvs/base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
st_site="$("$venvs/schemathesis/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$base_site" > "$st_site/oro-shared-deps.pth"
grep -v '^#' "$here/versions.txt" | while read -r version _; do
  [ -n "$version" ] || continue
  venv="$venvs/$version"
  if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('oro-sdk') != '$version')" 2>/dev/null; then
    continue
  fi
  echo "installing oro-sdk $version into .venv-oro/$version"
  rm -rf "$venv"
  python3 -m venv "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$base_site" > "$site/oro-shared-deps.pth"
  "$venv/bin/pip" install -q --no-deps "oro-sdk==$version"
done
