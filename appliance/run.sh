#!/usr/bin/env bash
# Runs the product on this machine, as root on a fresh Debian 12:
#   bash appliance/run.sh
# Today that is the operator's key workflow on a SoftHSM2 token kept under a state folder:
# initialise the token, generate an RSA-2048 and an Ed25519 key inside it, list them with
# their protection, print the DNS records to publish, then sign a sample message with both
# keys and verify it against those records served by a DNS server on 127.0.0.1 (dnsmasq,
# started and stopped here). Then dkim-signerd: a relay client is refused until alice's
# elevation request is approved by bob with his TOTP code, signs through it, the grant is
# revoked, and the audit log is verified. And dkim-relayd: mail submitted over SMTP (swaks) is
# signed through signerd inside that grant and delivered to a maildir next hop under the state
# folder; `key list` and `dns check` show the keys' lifecycle and the domain's records checked
# live; the relay's inbound listener checks that message again (SPF, DKIM, DMARC: pass) and
# refuses a forgery under the domain's DMARC p=reject; after the revoke the relay answers 451
# and files a new request. And dkim-webd: the
# same workflow through the HTTPS API (curl), and, when run from a terminal, the approval
# console at https://127.0.0.1:8443/ until Enter is pressed.
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
cmake --build build --target dkim-appliance dkim-signerd dkim-relayd dkim-webd >build.appliance.log 2>&1 ||
  { tail -50 build.appliance.log; exit 1; }
cli=$root/build/appliance/dkim-appliance
signerd=$root/build/appliance/dkim-signerd
relayd=$root/build/appliance/dkim-relayd
webd=$root/build/web/dkim-webd

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
# SPF and DMARC for the demo domain, for the relay's inbound listener below.
printf 'txt-record=%s,"v=spf1 ip4:127.0.0.1 -all"\ntxt-record=_dmarc.%s,"v=DMARC1; p=reject"\n' \
  "$domain" "$domain" >>"$dns_conf"
port=$((20000 + RANDOM % 20000))
dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 \
  --port="$port" --pid-file= --user=root --conf-file="$dns_conf" --local=/"$domain"/ 2>/dev/null &
dns_pid=$!
trap 'kill $dns_pid 2>/dev/null || true' EXIT
sleep 0.5
echo
echo "\$ dkim-appliance verify --dns-server 127.0.0.1:$port --authserv-id demo.local < sample.signed.eml"
"$cli" verify --dns-server "127.0.0.1:$port" --authserv-id demo.local <"$state/sample.signed.eml" || true

# --- dkim-signerd: signatures only inside an approved, time-limited grant -------------------
# signerd holds the PIN and the audit log; the relay client (here: the CLI as user nobody)
# holds neither. alice requests, bob approves with his TOTP code, the token is logged in only
# while the grant lasts, and every step lands in the hash-chained audit log.
chmod 711 "$state"
mkdir -p "$state/run" && chmod 755 "$state/run"
socket=$state/run/signerd.sock
cat >"$state/signerd.toml" <<TOML
module = "$module"
token = "dkim"
state_dir = "$state/signerd"
socket = "$socket"
socket_group = "nogroup"
[pin]
source = "file"
file = "$state/user.pin"
[peers]
admin = ["root"]
relay = ["nobody"]
web = ["daemon"]
[policy.sign]
max_duration = "1h"
TOML
"$signerd" --config "$state/signerd.toml" >>"$state/signerd.log" 2>&1 &
signerd_pid=$!
trap 'kill $dns_pid 2>/dev/null || true; kill $signerd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || { tail "$state/signerd.log"; exit 1; }

# The TOTP codes an authenticator app would show (RFC 6238), each time step used once.
totp() {
  /usr/bin/python3 - "$state/$1.totp" <<'PY'
import base64, hashlib, hmac, os, struct, sys, time
path = sys.argv[1]
secret = open(path).read().split()[0]
last = int(open(path + ".step").read()) if os.path.exists(path + ".step") else 0
while True:
    now = int(time.time() // 30)
    step = max(now - 1, last + 1)
    if step <= now + 1:
        break
    time.sleep(1)
open(path + ".step", "w").write(str(step))
mac = hmac.new(base64.b32decode(secret + "=" * (-len(secret) % 8)), struct.pack(">Q", step), hashlib.sha1).digest()
o = mac[19] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000))
PY
}
sd() {
  echo
  echo "\$ dkim-appliance $*"
  "$cli" "$@" --socket "$socket"
}
as() {  # as <user> <command...>: with the user's password file
  local who=$1
  shift
  echo
  echo "\$ dkim-appliance $* --user $who"
  "$cli" "$@" --socket "$socket" --user "$who" --password-file "$state/$who.password"
}
for who in alice:requester bob:approver; do
  name=${who%%:*}
  [ -f "$state/$name.password" ] || openssl rand -hex 16 >"$state/$name.password"
  if ! "$cli" user list --socket "$socket" | grep -q "^$name"; then
    sd user add --name "$name" --roles "${who#*:}" --new-password-file "$state/$name.password"
  fi
done
if [ ! -f "$state/bob.totp" ]; then
  "$cli" totp enrol --socket "$socket" --user bob --password-file "$state/bob.password" |
    grep -o 'secret=[A-Z2-7]*' | cut -d= -f2 >"$state/bob.totp"
  as bob totp confirm --code "$(totp bob)"
fi
relay_sign() {  # the command line to stderr, the signed message to stdout
  echo >&2
  echo "\$ dkim-appliance sign --signerd $socket --domain $domain --selector ed25519 --algorithm ed25519-sha256 < sample.eml   # as the relay (nobody)" >&2
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$cli" sign --signerd "$socket" --domain "$domain" \
    --selector ed25519 --algorithm ed25519-sha256 <"$sample"
}
relay_sign >/dev/null || echo "(exit $?: locked, a pending request was filed for approvers)"
sd elevation list --pending
request=$(as alice elevation request --operation sign --domain "$domain" --selector ed25519 --duration 15m \
  --budget 10 --reason "demo: sign the sample" | tee /dev/stderr | grep -o 'request [0-9][0-9]*' | tail -1 | cut -d' ' -f2)
as bob elevation approve --id "$request" --totp "$(totp bob)"
sd signerd status
relay_sign >"$state/sample.signerd.eml"
sed -n '1,/^From:/p' "$state/sample.signerd.eml" | sed '$d'
echo
echo "\$ dkim-appliance verify --dns-server 127.0.0.1:$port --authserv-id demo.local < sample.signerd.eml"
"$cli" verify --dns-server "127.0.0.1:$port" --authserv-id demo.local <"$state/sample.signerd.eml" || true

# --- provisioning: the keys' lifecycle as signerd records it, and the domain's DNS checked live --
# (the two keys above were made offline, with the PIN: they are active and unmanaged; keys made
# through signerd start pending-publish and need a key.generate grant)
as alice key list
as alice dns check "$domain" --outbound 127.0.0.1 --dns-server "127.0.0.1:$port" || true

# --- dkim-relayd: SMTP in, signed through signerd inside the grant, into a maildir ------------
mkdir -p "$state/maildir" "$state/inbox"
chown nobody:nogroup "$state/maildir" "$state/inbox"
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
relay_port=$(free_port)
inbound_port=$(free_port)
cat >"$state/relayd.toml" <<TOML
hostname = "relay.demo.local"
signerd_socket = "$socket"
[[listen]]
address = "127.0.0.1:$relay_port"
[[listen]]
address = "127.0.0.1:$inbound_port"
role = "inbound"
[next_hop]
url = "maildir:$state/maildir"
[inbound]
domains = ["$domain"]
dns_server = "127.0.0.1:$port"
[inbound.next_hop]
url = "maildir:$state/inbox"
[[domain]]
name = "$domain"
selectors = ["ed25519"]
[[client]]
name = "demo-apps"
networks = ["127.0.0.0/8"]
domains = ["$domain"]
TOML
chmod 644 "$state/relayd.toml"
setpriv --reuid=nobody --regid=nogroup --clear-groups "$relayd" --config "$state/relayd.toml" \
  >>"$state/relayd.log" 2>&1 &
relayd_pid=$!
trap 'kill $dns_pid $signerd_pid $relayd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$state/relayd.log" 2>/dev/null && break; sleep 0.1; done
submit() {
  echo
  echo "\$ swaks --server 127.0.0.1:$relay_port --from demo@$domain --to someone@peer.example --header 'Subject: $1'"
  swaks --server "127.0.0.1:$relay_port" --from "demo@$domain" --to someone@peer.example \
    --header "Subject: $1" 2>&1 | grep -E '^ *(->|<-|<\*\*) +(MAIL|RCPT|[0-9]{3} )' || true
}
submit "through the relay"
delivered=$(ls -t "$state/maildir/new" | head -1)
echo
echo "\$ dkim-appliance verify --dns-server 127.0.0.1:$port --authserv-id demo.local < maildir/new/$delivered"
"$cli" verify --dns-server "127.0.0.1:$port" --authserv-id demo.local <"$state/maildir/new/$delivered" || true
tail -1 "$state/relayd.log"

# The relay's second role: an inbound listener checks SPF, DKIM and DMARC, prepends one
# Authentication-Results field and enforces the sender's DMARC policy. The message the relay
# just signed passes; a forgery of the same From: domain, unsigned and from another envelope
# domain, meets the domain's p=reject.
echo
echo "\$ swaks --server 127.0.0.1:$inbound_port --from demo@$domain --to postmaster@$domain --data maildir/new/$delivered"
swaks --server "127.0.0.1:$inbound_port" --from "demo@$domain" --to "postmaster@$domain" \
  --data "$state/maildir/new/$delivered" 2>&1 | grep -E '^ *<- +250 2\.0\.0' || true
checked=$(ls -t "$state/inbox/new" | head -1)
sed -n '/^Authentication-Results:/,/^[^[:space:]]/p' "$state/inbox/new/$checked" | sed '$d'
echo
echo "\$ swaks --server 127.0.0.1:$inbound_port --from ceo@spoof.invalid --to postmaster@$domain --header 'From: ceo@$domain'"
swaks --server "127.0.0.1:$inbound_port" --from ceo@spoof.invalid --to "postmaster@$domain" \
  --header "From: ceo@$domain" 2>&1 | grep -E '^ *<\*\* +5' || true

grant=$("$cli" grant list --active --socket "$socket" | tail -1 | cut -f1)
as bob elevation revoke --grant "$grant" --reason "demo done" --totp "$(totp bob)"
sd signerd status
submit "after the revoke"
kill "$relayd_pid" && wait "$relayd_pid" || true

# --- dkim-webd: the HTTPS API and the approval console -----------------------------------------
# webd runs as its own user (daemon here), which signerd knows as its web peer; it holds no key
# and no credential store: signerd checks every password, token and TOTP code.
mkdir -p "$state/webd"
chown daemon:nogroup "$state/webd"
web_port=${DKIM_WEB_PORT:-8443}
cat >"$state/webd.toml" <<TOML
listen = "127.0.0.1:$web_port"
self_signed = true                 # development: a certificate made once in state_dir
state_dir = "$state/webd"
signerd_socket = "$socket"
[dns]
outbound_addresses = ["192.0.2.25"]
dmarc_rua = "mailto:dmarc-reports@$domain"
TOML
chmod 644 "$state/webd.toml"
setpriv --reuid=daemon --regid=nogroup --clear-groups "$webd" --config "$state/webd.toml" \
  >>"$state/webd.log" 2>&1 &
webd_pid=$!
trap 'kill $dns_pid $signerd_pid $webd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$state/webd.log" 2>/dev/null && break; sleep 0.1; done
grep -E "fingerprint|listening" "$state/webd.log" | tail -2
ca=$state/webd/webd-selfsigned.crt
url=https://127.0.0.1:$web_port
api() {  # api <cookie-jar> <method> <path> [json]: prints the command and the answer
  local jar=$1 method=$2 path=$3 body=${4:-}
  local csrf=""
  [ -f "$jar.csrf" ] && csrf=$(cat "$jar.csrf")
  local shown
  shown=$(printf '%s' "$body" | sed -e 's/"password":"[^"]*"/"password":"(hidden)"/' -e 's/"totp":"[0-9]*"/"totp":"(code)"/')
  echo
  echo "\$ curl -X $method $url$path${shown:+ -d '$shown'}"
  curl -sS --cacert "$ca" -b "$jar" -c "$jar" -X "$method" -H "X-CSRF-Token: $csrf" \
    ${body:+-H "Content-Type: application/json" -d "$body"} "$url$path" | tee "$jar.last"
  echo
}
jar_alice=$(mktemp) jar_bob=$(mktemp)
api "$jar_alice" GET /healthz
api "$jar_alice" POST /api/v1/session "{\"user\":\"alice\",\"password\":\"$(cat "$state/alice.password")\"}" >/dev/null
grep -o '"csrf_token": *"[0-9a-f]*"' "$jar_alice.last" | grep -o '[0-9a-f]\{64\}' >"$jar_alice.csrf"
api "$jar_alice" POST /api/v1/elevations "{\"operation\":\"sign\",\"domain\":\"$domain\",\"selector\":\"ed25519\",\"duration_seconds\":900,\"budget\":10,\"reason\":\"demo through the API\"}"
web_request=$(grep -o '"id": *[0-9]*' "$jar_alice.last" | head -1 | grep -o '[0-9]*$')
api "$jar_bob" POST /api/v1/session "{\"user\":\"bob\",\"password\":\"$(cat "$state/bob.password")\",\"totp\":\"$(totp bob)\"}" >/dev/null
grep -o '"csrf_token": *"[0-9a-f]*"' "$jar_bob.last" | grep -o '[0-9a-f]\{64\}' >"$jar_bob.csrf"
api "$jar_bob" POST "/api/v1/elevations/$web_request/approve" "{\"totp\":\"$(totp bob)\"}"
if [ -t 0 ] && [ -t 1 ]; then
  cat <<TEXT

The approval console is running: $url/
  (self-signed certificate, SHA-256 fingerprint in $state/webd.log)
  requester: alice, password in $state/alice.password
  approver:  bob, password in $state/bob.password; his authenticator secret is in
             $state/bob.totp (add it to an authenticator app, or run:
             oathtool --totp -b \$(cat $state/bob.totp))
Grant $web_request is active for 15 minutes: revoke it in the console (Grants), or leave it.
Press Enter to stop the daemons and finish the tour.
TEXT
  read -r _ || true
fi
api "$jar_bob" POST "/api/v1/elevations/$web_request/revoke" "{\"totp\":\"$(totp bob)\",\"reason\":\"demo done\"}" || true
api "$jar_alice" DELETE /api/v1/session >/dev/null
rm -f "$jar_alice"* "$jar_bob"*
kill "$webd_pid" && wait "$webd_pid" || true
sd audit show --from "$(("$("$cli" signerd status --socket "$socket" | grep -o '[0-9]* records' | cut -d' ' -f1)" - 10))"
kill "$signerd_pid" && wait "$signerd_pid" || true
echo
echo "\$ dkim-appliance audit verify --db $state/signerd/signerd.db --token dkim"
"$cli" --config "$state/dkim-appliance.toml" audit verify --db "$state/signerd/signerd.db"
kill $dns_pid 2>/dev/null || true

cat <<TEXT

State folder: $state (token store, PIN files mode 0600, dkim-appliance.toml).
Signed sample: $state/sample.signed.eml (with the PIN file), $state/sample.signerd.eml (through
dkim-signerd, inside a grant). dkim-signerd's configuration, log and database: $state/signerd.toml,
$state/signerd.log, $state/signerd/signerd.db. dkim-relayd's configuration and log:
$state/relayd.toml, $state/relayd.log; what it delivered: $state/maildir/new (signed) and
$state/inbox/new (checked by the inbound listener). dkim-webd's
configuration, log and self-signed certificate: $state/webd.toml, $state/webd.log, $state/webd/.
Try:  SOFTHSM2_CONF=$SOFTHSM2_CONF $cli --config $state/dkim-appliance.toml key list --json
Remove everything with: rm -rf $state
TEXT
