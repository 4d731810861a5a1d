#!/usr/bin/env bash
# Runs the product on this machine, as root on a fresh Debian 12:
#   bash appliance/run.sh
# Today that is the operator's key workflow on a SoftHSM2 token kept under a state folder:
# initialise the token, generate an RSA-2048 and an Ed25519 key inside it, list them with
# their protection, print the DNS records to publish, then sign a sample message with both
# keys and verify it against those records served by a DNS server on 127.0.0.1 (dnsmasq,
# started and stopped here). The signing daemons (dkim-signerd, dkim-relayd, dkim-webd) join
# this command as they are built.
#
# DKIM_STATE_DIR (default ./state) holds the token, the PIN files and the config; running the
# command again reuses them. DKIM_DOMAIN (default example.com) is the signing domain.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash .ci/install-deps.sh
echo "== building dkim-appliance"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.configure.log 2>&1 ||
  { cat build.configure.log; exit 1; }
cmake --build build --target dkim-appliance >build.appliance.log 2>&1 || { tail -50 build.appliance.log; exit 1; }
cli=$root/build/appliance/dkim-appliance

state=$(mkdir -p "${DKIM_STATE_DIR:-state}" && cd "${DKIM_STATE_DIR:-state}" && pwd)
domain=${DKIM_DOMAIN:-example.com}
module=$(find /usr/lib -name libsofthsm2.so -path '*softhsm*' | head -1)
umask 077
mkdir -p "$state/tokens"
export SOFTHSM2_CONF=$state/softhsm2.conf
if [ ! -f "$SOFTHSM2_CONF" ]; then
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nlibrary.reset_on_fork = true\n' \
    "$state/tokens" >"$SOFTHSM2_CONF"
fi
[ -f "$state/so.pin" ] || openssl rand -hex 16 >"$state/so.pin"
[ -f "$state/user.pin" ] || openssl rand -hex 16 >"$state/user.pin"
cat >"$state/dkim-appliance.toml" <<TOML
# Defaults for every dkim-appliance command (the command line wins).
module = "$module"
token = "dkim"
pin-file = "$state/user.pin"
TOML

run() {
  echo
  echo "\$ dkim-appliance $*"
  "$cli" --config "$state/dkim-appliance.toml" "$@"
}

if ! "$cli" token list --module "$module" | grep -q "token 'dkim'"; then
  run token init --label dkim --so-pin-file "$state/so.pin"
fi
run token list
for key in "rsa2048:rsa-2048" "ed25519:ed25519"; do
  selector=${key%%:*}
  if ! "$cli" --config "$state/dkim-appliance.toml" dns record --domain "$domain" --selector "$selector" >/dev/null 2>&1; then
    run key generate --domain "$domain" --selector "$selector" --algorithm "${key#*:}"
  fi
done
run key list
echo
echo "# OpenSC's view of the same private keys (an independent tool):"
# The PIN goes through the environment (env:), never the command line where ps shows it.
DKIM_DEMO_PIN=$(cat "$state/user.pin") pkcs11-tool --module "$module" --token-label dkim \
  --login --pin env:DKIM_DEMO_PIN --list-objects --type privkey 2>/dev/null | sed 's/^/  /'
for selector in rsa2048 ed25519; do
  run dns record --domain "$domain" --selector "$selector"
done

# Sign a sample message with both keys, then verify it the way a receiver would: the records
# above, served by dnsmasq on a loopback port for the length of this demo.
sample=$state/sample.eml
cat >"$sample" <<MAIL
From: Demo Sender <demo@$domain>
To: Someone <someone@example.net>
Subject: Signed inside the token
Date: $(date -R)
Message-ID: <demo.$(date +%s)@$domain>

This message was signed by keys that never left the SoftHSM2 token.
MAIL
echo
echo "\$ dkim-appliance sign --domain $domain --selector rsa2048 --selector ed25519 < sample.eml"
"$cli" --config "$state/dkim-appliance.toml" sign --domain "$domain" --selector rsa2048 \
  --selector ed25519 <"$sample" >"$state/sample.signed.eml"
sed -n '1,/^From:/p' "$state/sample.signed.eml" | sed '$d'
dns_conf=$state/dnsmasq.conf
: >"$dns_conf"
for selector in rsa2048 ed25519; do
  value=$("$cli" --config "$state/dkim-appliance.toml" dns record --domain "$domain" --selector "$selector" |
    grep -o '"[^"]*"' | tr -d '"\n')
  printf 'txt-record=%s._domainkey.%s,"%s"\n' "$selector" "$domain" "$(echo "$value" | sed 's/.\{255\}/&","/g')" >>"$dns_conf"
done
port=$((20000 + RANDOM % 20000))
dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 \
  --port="$port" --pid-file= --user=root --conf-file="$dns_conf" --local=/"$domain"/ 2>/dev/null &
dns_pid=$!
trap 'kill $dns_pid 2>/dev/null || true' EXIT
sleep 0.5
echo
echo "\$ dkim-appliance verify --dns-server 127.0.0.1:$port --authserv-id demo.local < sample.signed.eml"
"$cli" verify --dns-server "127.0.0.1:$port" --authserv-id demo.local <"$state/sample.signed.eml" || true
kill $dns_pid 2>/dev/null || true

cat <<TEXT

State folder: $state (token store, PIN files mode 0600, dkim-appliance.toml).
Signed sample: $state/sample.signed.eml
Try:  SOFTHSM2_CONF=$SOFTHSM2_CONF $cli --config $state/dkim-appliance.toml key list --json
Remove everything with: rm -rf $state
TEXT
