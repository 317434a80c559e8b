#!/usr/bin/env bash
# sandbox-worker.sh — run meshbroker-worker (or SANDBOX_WORKER) under a
# reproduction of meshbroker@.service's sandbox that needs no PID 1 (issue 12,
# acceptance 3).  Use it as MESHBROKER_WORKER of meshbroker-accept; it must run
# as root (it makes mounts), and becomes the worker by exec (same pid), so the
# acceptor's signals and reaping work unchanged.  Reproduced:
#   ProtectSystem=strict   every mount read-only except the runtime directory
#   PrivateTmp=yes         an empty /tmp (the runtime dir and the PostgreSQL
#                          socket dir of DATABASE_URL stay visible if under /tmp)
#   ProtectHome=yes        /home, /root, /run/user empty and read-only
#   PrivateDevices=yes     a /dev of null, zero, full, random, urandom, tty, shm
#   ProtectKernelTunables  /proc/sys and /sys read-only
#   User=meshbroker        when that user exists and can reach the worker, the
#                          helper and SANDBOX_SYSCALLS (the runtime dir is
#                          handed to it); otherwise uid 0 without capabilities
#   NoNewPrivileges=yes, CapabilityBoundingSet= (setpriv), UMask=0077
#   SystemCallFilter=, SystemCallErrorNumber=, SystemCallArchitectures=native,
#   MemoryDenyWriteExecute=, RestrictNamespaces=, RestrictAddressFamilies=
#                          (scripts/seccomp-exec.py, from the unit file itself)
# Not reproduced: PrivateUsers, ProtectProc, the IP filter and the cgroup limits.
# Environment: SANDBOX_UNIT (default units/meshbroker@.service), SANDBOX_SYSCALLS
# (the allow list from `seccomp-exec.py --list UNIT`; computed when unset),
# SANDBOX_WORKER (default $MESHBROKER_BIN or build/bin, meshbroker-worker),
# SANDBOX_USER (default meshbroker; empty: stay uid 0).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${1:-}" != --inside ]; then
  # a private mount namespace; unshare execs (no fork): the pid stays the worker's
  exec unshare --mount --propagation private -- "$here/sandbox-worker.sh" --inside "$@"
fi
shift
die() { echo "sandbox-worker: $*" >&2; exit 111; }

unit=${SANDBOX_UNIT:-$here/../units/meshbroker@.service}
unit=$(realpath "$unit")
worker=${SANDBOX_WORKER:-${MESHBROKER_BIN:-$here/../build/bin}/meshbroker-worker}
worker=$(realpath "$worker")
rt=${RUNTIME_DIRECTORY:-${MESHBROKER_RUNTIME_DIR:-}}
[ -n "$rt" ] || die "no runtime directory (RUNTIME_DIRECTORY or MESHBROKER_RUNTIME_DIR)"
mkdir -p "$rt"
rt=$(realpath "$rt")
allow=${SANDBOX_SYSCALLS:-}
if [ -z "$allow" ]; then
  allow=$rt/.sandbox-syscalls.$$
  /usr/bin/python3 -B "$here/seccomp-exec.py" --list "$unit" >"$allow"
fi
allow=$(realpath "$allow")

# User=: only if that user can reach what it must run (checked on the host's view)
user=${SANDBOX_USER-meshbroker}
ids=()
if [ -n "$user" ] && id -u "$user" >/dev/null 2>&1 &&
   runuser -u "$user" -- test -x "$worker" -a -r "$here/seccomp-exec.py" -a -r "$allow" -a -r "$unit" 2>/dev/null; then
  ids=(--reuid "$user" --regid "$user" --clear-groups)
  # the runtime dir is the service user's (RuntimeDirectory= + User=)
  [ "$(stat -c %U "$rt")" = "$user" ] || chown -R "$user:" "$rt"
fi

# what must stay visible inside the private /tmp (read-only but the runtime dir)
keep=("$(dirname "$worker")" "$here" "$(dirname "$unit")" "$(dirname "$allow")")
pgdir=$(printf '%s' "${DATABASE_URL:-}" | sed -nE 's/.*[?&]host=(\/[^&]*).*/\1/p')
[ -n "$pgdir" ] && [ -d "$pgdir" ] && keep+=("$(realpath "$pgdir")")
under() { case $1/ in "$2"/*) return 0 ;; esac; return 1; } # path under dir

# PrivateTmp=yes: park what is kept, mount an empty /tmp, put it back
stage=/mnt
[ -d "$stage" ] || die "no $stage to stage mounts on"
mount -t tmpfs -o mode=0700 sandbox-stage "$stage"
moved=()
i=0
for p in "$rt" "${keep[@]}"; do
  under "$p" /tmp || continue
  mkdir "$stage/$i" && mount --bind "$p" "$stage/$i"
  moved+=("$p")
  i=$((i + 1))
done
mount -t tmpfs -o mode=1777,nosuid,nodev sandbox-tmp /tmp
i=0
for p in ${moved[@]+"${moved[@]}"}; do
  mkdir -p "$p" && mount --bind "$stage/$i" "$p"
  i=$((i + 1))
done
umount -l "$stage"

# PrivateDevices=yes: a fresh /dev with the harmless pseudo-devices only
mount -t tmpfs -o mode=0700 sandbox-stage "$stage"
devs=(null zero full random urandom tty)
for n in "${devs[@]}"; do
  touch "$stage/$n" && mount --bind "/dev/$n" "$stage/$n"
done
mount -t tmpfs -o mode=0755,nosuid,noexec sandbox-dev /dev
for n in "${devs[@]}"; do
  touch "/dev/$n" && mount --bind "$stage/$n" "/dev/$n"
done
umount -l "$stage"
mkdir -m 1777 /dev/shm /dev/mqueue
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

# ProtectHome=yes, unless the worker itself lives there
for h in /home /root /run/user; do
  [ -d "$h" ] || continue
  skip=0
  for p in "$rt" "${keep[@]}"; do under "$p" "$h" && skip=1; done
  [ $skip = 1 ] || mount -t tmpfs -o ro,mode=0755 sandbox-home "$h"
done

# ProtectSystem=strict: every mount read-only but the runtime dir, the private
# /tmp and the API file systems (/proc, /dev); then /proc/sys (ProtectKernelTunables)
mount --bind "$rt" "$rt"
while read -r _ _ _ _ mp _; do
  mp=$(printf '%b' "$mp") # mountinfo escapes spaces as \040
  case $mp in /proc | /proc/* | /dev | /dev/* | /tmp) continue ;; esac
  if [ "$mp" = "$rt" ] || under "$mp" "$rt"; then continue; fi
  if ! mount -o remount,bind,ro "$mp" 2>/dev/null; then
    [ "$mp" = / ] && die "cannot make / read-only"
  fi
done </proc/self/mountinfo
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys

umask 0077
exec setpriv ${ids[@]+"${ids[@]}"} --no-new-privs --inh-caps=-all --bounding-set=-all -- \
  /usr/bin/python3 -B "$here/seccomp-exec.py" --allow "$allow" --unit "$unit" -- "$worker" "$@"
