#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages.
# Idempotent: when everything is present it only runs one dpkg-query (well under a second).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  ccache                                 # tests/stages.sh: a new clone reuses earlier compilations
  clang-14 libclang-rt-14-dev            # libFuzzer targets and sanitizer runtimes
  clang-format-14 clang-tidy-14          # the lint tests
  # libraries
  libboost1.81-dev                       # Boost.Beast/Asio (1.81: http::message_generator)
  libssl-dev                             # OpenSSL 3
  libp11-kit-dev                         # pkcs11.h (the only PKCS#11 header we include)
  libcereal-dev libcli11-dev libtomlplusplus-dev
  libsqlite3-dev libsodium-dev            # signerd: the state store, Argon2id
  libpq-dev                              # signerd: the state store several nodes share (PostgreSQL)
  libfido2-dev                           # signerd: WebAuthn assertions (fido_assert_verify)
  libgfshare-dev                         # signerd: Shamir shares of the token PIN (custody "shares")
  libsystemd-dev                         # sd_notify: READY=1 and the watchdog in the daemons
  libgtest-dev libgmock-dev libbenchmark-dev
  libunbound-dev                         # DNS: the DKIM key, SPF and DMARC lookups
  libyaml-cpp-dev                        # reads the RFC 7208 SPF test suite (tests only)
  libpsl-dev publicsuffix                # DMARC organizational domains by the Public Suffix List
  libopendkim-dev                        # OpenDKIM's library, a peer in tests/bench only
  libspf2-dev libopendmarc-dev           # libspf2 and OpenDMARC: the inbound benchmark's peers
  libexpat1-dev zlib1g-dev libgmime-3.0-dev  # DMARC/TLS reports: XML, gzip/zip, report mails
  libcurl4-openssl-dev                   # reports: fetching report mail from an IMAP mailbox
  # real peers for tests
  softhsm2                               # the development/CI token
  opencryptoki                           # the second PKCS#11 implementation: tests start a private pkcsslotd
  postgresql-15                          # the cluster's shared store: tests initdb their own server
  opensc                                 # pkcs11-tool, for cross-checks against our own code
  valgrind                               # callgrind instruction counts in tests/bench
  dnsmasq-base                           # a real DNS server on 127.0.0.1 for DKIM key records
  nsd ldnsutils                          # a DNSSEC-signed zone on 127.0.0.1 (service disabled)
  python3-dkim python3-nacl python3-dnspython   # dkimpy, an independent signer/verifier
  python3-spf                            # pyspf, the peer our SPF results are compared with
  systemd                                # systemd-creds: the sealed PIN custody's tests seal with a host key of their own
  python3-cryptography                   # X25519, HKDF, AES-GCM, Ed25519: the PIN custody capture test seals as the console does
  libmail-dkim-perl libnet-dns-perl libcryptx-perl  # Perl Mail::DKIM, another one
  libmail-dmarc-perl dmarc-cat           # Mail::DMARC and dmarc-cat: independent readers of DMARC reports (tests/reports/)
  time                                   # GNU time: peak RSS in tests/bench/run-reports-bench
  swaks                                  # the SMTP client in the relay tests
  postfix                                # smtp-source/smtp-sink; its daemon is never started
  opendkim                               # the milter peer in tests/bench (a private instance)
  dovecot-imapd                          # reports fetch-imap's IMAP server (a private instance; service disabled)
  opendkim-tools                         # opendkim-genkey: the keys the OpenDKIM import test migrates
  chromium                               # the console's end-to-end test (driven by playwright-core)
  oathtool                               # TOTP codes for the tour in appliance/run.sh
  nftables iproute2                      # the appliance's firewall, checked in namespaces
  help2man                               # the package's man pages, from each binary's --help
  debootstrap                            # a Debian 12 folder the package test installs into
)
# Node.js for playwright-core: Debian's, unless the machine already has one.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

# playwright-core (no browser download: the test drives Debian's Chromium), from the npm
# registry at the version package-lock.json pins; again only when the lock file changed.
browser_deps() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/browser"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  browser_deps
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them) and try again" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix, OpenDKIM, NSD, Dovecot, PostgreSQL and openCryptoki's pkcsslotd are wanted for their tools and for private instances that
# the tests and benchmarks start themselves: the packages' own services must not start, and Postfix
# must not be configured as this machine's mailer.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi
trap '[ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for unit in postfix opendkim nsd dovecot postgresql pkcsslotd; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
browser_deps
