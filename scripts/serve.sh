#!/usr/bin/env bash
# Install revoker into .venv and run it on its embedded default store (memory://).
# Any REVOKER_* variable in the environment is honoured; arguments go to `revoker serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q '.[fast]'
echo "==> admin console: http://${REVOKER_HOST:-127.0.0.1}:${REVOKER_PORT:-8080}/console/" \
     "(API reference: /docs)"
exec .venv/bin/revoker serve "$@"
