#!/usr/bin/env bash
# Runs the appliance on this machine, as root on a fresh Debian 12:
#   bash appliance/run.sh [up options...]
# Installs what it needs (apt-get), builds dkim-appliance and the four daemons, then runs
# `dkim-appliance up --state-dir state`: on first use it makes everything under ./state (a
# SoftHSM2 token with an RSA-2048 and an Ed25519 key for example.test, signerd's SQLite state,
# commented configurations, an admin and an approver with passwords and TOTP seeds, a
# self-signed certificate), starts dkim-signerd, dkim-reportd, dkim-relayd and dkim-webd, each as
# its own system user, supervises them until Ctrl-C, and prints the console URL, the
# credentials, the SMTP port and a swaks command. Mail goes to ./state/maildir unless --next-hop
# smtp://HOST:PORT says otherwise. A second run reuses ./state.
#
# DKIM_STATE_DIR (default ./state) changes the folder; any other options go to `up` (see
# `dkim-appliance up --help`: --smtp, --https, --next-hop, --domain, --json).
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/install-deps.sh
echo "== building dkim-appliance, dkim-signerd, dkim-reportd, dkim-relayd and dkim-webd (log: build.appliance.log)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDKIM_BUILD_TESTS=OFF \
  -DDKIM_BUILD_BENCH=OFF >build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
cmake --build build --target dkim-appliance dkim-signerd dkim-reportd dkim-relayd dkim-webd \
  >build.appliance.log 2>&1 ||
  { tail -50 build.appliance.log; exit 1; }
exec build/appliance/dkim-appliance up --state-dir "${DKIM_STATE_DIR:-state}" "$@"
