#!/bin/bash
# ock-private-run.sh CMD [ARGS...]
#
# Run CMD with a private openCryptoki 3.8.1 (Debian bookworm) instance:
# a private pkcsslotd + a fresh software token (slot 3, libpkcs11_sw.so),
# without touching /etc/opencryptoki, /var/lib/opencryptoki, /run/lock,
# /run/pkcsslotd.{socket,pid}, /var/log/opencryptoki or /dev/shm of the host.
#
# Must run as root (pkcsslotd refuses to run otherwise). Needs the
# `opencryptoki` package installed and the `pkcs11` group (created by its
# postinst).
#
# Isolation:
#   --mount : all openCryptoki paths are hard-coded (no env var relocates
#             them), so they are shadowed with tmpfs-backed dirs.
#   --ipc   : pkcsslotd and libopencryptoki meet in a SysV shm segment keyed by
#             ftok("/usr/sbin/pkcsslotd",'b'); a private IPC namespace avoids
#             colliding with any host pkcsslotd and frees it automatically.
#   --pid --fork --mount-proc : pkcsslotd daemonizes (always; no foreground
#             option). In a private PID namespace the kernel kills it when
#             this script (PID 1 there) exits, even on crash/SIGKILL.
#             --mount-proc is needed so pkcsslotd's garbage collector
#             (which looks at /proc/<pid>) sees namespace PIDs.
#
# Env knobs: OCK_SLOT (default 3), OCK_SO_PIN (default 87654321 = the
# factory SO PIN of the sw token), OCK_USER_PIN (default 1234),
# OCK_LABEL (default dkim-test), OCK_INIT=0 to skip token initialisation,
# OCK_GROUP_MEMBERS="user1 user2": non-root users that must use the token.
# libopencryptoki 3.8.1 only lets a non-root process in if its user NAME is
# listed in the pkcs11 line of /etc/group (gr_mem) -- the gid alone is not
# enough -- and the process also needs the pkcs11 gid (socket/shm/files are
# 0660/0770 root:pkcs11). The listing is done on a namespace-private copy of
# /etc/group; run the process e.g. with
#   setpriv --reuid=USER --regid=USER --groups=$(getent group pkcs11|cut -d: -f3) CMD
# Never set PKCS_APP_STORE: in 3.8.1 it makes the sw token write NVTOK.DAT and
# MK_SO into "/" of the (host) root filesystem.
set -euo pipefail

if [ "${OCK_IN_NS:-}" != 1 ]; then
    exec env OCK_IN_NS=1 unshare --mount --ipc --pid --fork --mount-proc \
        --propagation private -- "$0" "$@"
fi

SLOT=${OCK_SLOT:-3}
SO_PIN=${OCK_SO_PIN:-87654321}
USER_PIN=${OCK_USER_PIN:-1234}
LABEL=${OCK_LABEL:-dkim-test}

T=$(mktemp -d /tmp/ock-ns.XXXXXX)      # only a mount point on the host
mount -t tmpfs -o mode=0755,size=64m ock-private "$T"

# Replace directory $1 by a tmpfs in this mount namespace, re-binding every
# existing entry of the original directory (so host sockets/files stay
# reachable) except the names given in $2... (which become private/empty).
shadow_dir() {
    local dir=$1; shift
    local keep="$T/orig$(echo "$dir" | tr / _)"
    mkdir -p "$keep"
    mount --rbind "$dir" "$keep"
    mount -t tmpfs -o "mode=$(stat -c %a "$dir")" shadow "$dir"
    local e skip x
    for e in $(ls -A "$keep"); do
        skip=0; for x in "$@"; do [ "$e" = "$x" ] && skip=1; done
        [ $skip = 1 ] && continue
        if [ -L "$keep/$e" ]; then cp -P "$keep/$e" "$dir/$e"
        elif [ -d "$keep/$e" ]; then mkdir -p "$dir/$e"; mount --rbind "$keep/$e" "$dir/$e"
        else touch "$dir/$e"; mount --bind "$keep/$e" "$dir/$e"
        fi
    done
}

# /run (= /var/run): pkcsslotd.socket, pkcsslotd.pid; /run/lock (= /var/lock):
# opencryptoki/LCK..APIlock, opencryptoki/swtok/LCK..swtok
shadow_dir /run lock pkcsslotd.socket pkcsslotd.pid
mkdir -m 1777 /run/lock
install -d -m 0770 -o root -g pkcs11 /run/lock/opencryptoki /run/lock/opencryptoki/swtok
# /var/log/opencryptoki (pkcsslotd mkdirs it; trace.<pid> files go there)
if [ -d /var/log/opencryptoki ]; then
    mkdir "$T/log"; mount --bind "$T/log" /var/log/opencryptoki
else
    shadow_dir /var/log
fi
install -d -m 0770 -o root -g pkcs11 /var/log/opencryptoki
# /dev/shm: the sw token keeps its object index in POSIX shm
# "/dev/shm/var.lib.opencryptoki.swtok"
shadow_dir /dev/shm
chmod 1777 /dev/shm
# config + token store
mkdir -p "$T/etc" "$T/lib"
cat > "$T/etc/opencryptoki.conf" <<EOF
version opencryptoki-3.1
slot $SLOT
{
stdll = libpkcs11_sw.so
}
EOF
install -d -m 0770 -o root -g pkcs11 "$T/lib/swtok" "$T/lib/swtok/TOK_OBJ"
chown root:pkcs11 "$T/lib"; chmod 0770 "$T/lib"
for d in /etc/opencryptoki /var/lib/opencryptoki; do
    [ -d "$d" ] || { echo "missing $d (install opencryptoki)" >&2; exit 1; }
done
mount --bind "$T/etc" /etc/opencryptoki
if [ -n "${OCK_GROUP_MEMBERS:-}" ]; then
    cp /etc/group "$T/group"
    for u in $OCK_GROUP_MEMBERS; do
        sed -i -E "s/^(pkcs11:[^:]*:[0-9]+:)(.*)\$/\1\2,$u/; s/^(pkcs11:[^:]*:[0-9]+:),/\1/" "$T/group"
    done
    mount --bind "$T/group" /etc/group
fi
mount --bind "$T/lib" /var/lib/opencryptoki

stop_slotd() {
    local pid
    pid=$(cat /run/pkcsslotd.pid 2>/dev/null) || return 0
    # pkcsslotd ignores SIGTERM while registered client processes are alive
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
trap 'stop_slotd; umount -R "$T" 2>/dev/null || umount -l "$T"; rmdir "$T" 2>/dev/null || true' EXIT

/usr/sbin/pkcsslotd            # forks; parent returns once the socket exists
for _ in $(seq 50); do [ -s /run/pkcsslotd.pid ] && break; sleep 0.1; done

if [ "${OCK_INIT:-1}" = 1 ]; then
    echo "$LABEL" | pkcsconf -c "$SLOT" -I -S "$SO_PIN" >/dev/null
    pkcsconf -c "$SLOT" -u -S "$SO_PIN" -n "$USER_PIN" >/dev/null
fi

set +e
"$@"
rc=$?
exit $rc
