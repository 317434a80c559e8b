#!/usr/bin/env bash
# package-test.sh — what `make package-test` does (issue 12, acceptance 2):
# build the Debian package from a fresh copy of the tree with
# `dpkg-buildpackage -us -uc -b`, check what the meshbroker and the client-only
# meshctl package hold (issue 20), install them on this
# machine with `dpkg -i` (root only), check the user, the runtime directory,
# the config and the enabled socket, and run lintian (no errors allowed).
# Prints one "package-test:" line per check and the figures at the end; the
# exit status is non-zero when anything failed.
#   KEEP_PKG_DIR=1   keep the build directory (its path is printed)
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
failed=0 passed=0
ok()   { passed=$((passed + 1)); echo "package-test: ok   $*"; }
bad()  { failed=$((failed + 1)); echo "package-test: FAIL $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

work=$(mktemp -d /tmp/meshbroker-pkg.XXXXXX)
[ "${KEEP_PKG_DIR:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
src=$work/meshbroker

# a fresh clone of what is committed plus what is being changed (untracked
# files too, minus the ignored ones such as build/): nothing built leaks in
mkdir -p "$src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$src"

# the copy has no .git: debian/rules takes the commit from here (issue 23)
export GIT_SHA=${GIT_SHA:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
echo "== dpkg-buildpackage -us -uc -b (log: $work/build.log)"
if (cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
  ok "dpkg-buildpackage -us -uc -b"
else
  bad "dpkg-buildpackage -us -uc -b"
  tail -30 "$work/build.log"
  echo "$passed passed, $failed failed"
  exit 1
fi
deb=$(ls "$work"/meshbroker_*.deb 2>/dev/null | head -1)
dbg=$(ls "$work"/meshbroker-dbgsym_*.deb 2>/dev/null | head -1)
changes=$(ls "$work"/meshbroker_*.changes 2>/dev/null | head -1)
[ -n "$deb" ] && ok "built $(basename "$deb")" || bad "no meshbroker_*.deb"
[ -n "$dbg" ] && ok "built $(basename "$dbg") (separate debug symbols)" || bad "no meshbroker-dbgsym_*.deb"
ctl=$(ls "$work"/meshctl_*.deb 2>/dev/null | head -1)
[ -n "$ctl" ] && ok "built $(basename "$ctl") (the client alone)" || bad "no meshctl_*.deb"

# ------------------------------------------------------------ contents
x=$work/x
dpkg-deb -x "$deb" "$x"
[ -n "$ctl" ] && dpkg-deb -x "$ctl" "$x"
check "meshctl package: the binary, its man page and completion, nothing of the broker" sh -c \
  "dpkg-deb -c '$ctl' | grep -q '/usr/bin/meshctl\$' && dpkg-deb -c '$ctl' | grep -q 'man1/meshctl.1.gz\$' &&
   dpkg-deb -c '$ctl' | grep -q 'completions/meshctl\$' && ! dpkg-deb -c '$ctl' | grep -qE 'meshbroker-|systemd|/etc/'"
check "meshbroker package depends on meshctl and no longer ships it" sh -c \
  "dpkg-deb -f '$deb' Depends | grep -q 'meshctl (= ' && ! dpkg-deb -c '$deb' | grep -q '/usr/bin/meshctl\$'"
for b in meshbroker-worker meshbroker-accept meshctl; do
  if [ -x "$x/usr/bin/$b" ] && ! readelf -S -W "$x/usr/bin/$b" | grep -qE '\.symtab|\.debug_info'; then
    ok "usr/bin/$b is stripped"
  else
    bad "usr/bin/$b missing or not stripped"
  fi
done
check "debug symbols hold the build-ids of the binaries" \
  sh -c "dpkg-deb -c '$dbg' | grep -q 'usr/lib/debug/.build-id/.*\\.debug'"
for f in lib/systemd/system/meshbroker.socket lib/systemd/system/meshbroker@.service \
         lib/systemd/system/meshbroker.slice lib/systemd/system/meshbroker-migrate.service \
         lib/systemd/system/meshbroker-accept.service lib/systemd/system/meshbroker-relay.service \
         usr/lib/sysusers.d/meshbroker.conf usr/lib/tmpfiles.d/meshbroker.conf usr/share/man/man1/meshctl.1.gz \
         usr/share/man/man8/meshbroker-worker.8.gz usr/share/man/man8/meshbroker-accept.8.gz \
         usr/share/man/man8/meshbroker-relay.8.gz usr/bin/meshbroker-relay \
         usr/share/man/man5/meshbroker.conf.5.gz etc/meshbroker/env \
         usr/share/bash-completion/completions/meshctl usr/share/meshbroker/grafana/meshbroker.json \
         usr/share/meshbroker/prometheus/meshbroker-alerts.yml; do
  check "ships /$f" test -f "$x/$f"
done
check "/etc/meshbroker/env is a conffile" sh -c "dpkg-deb -f '$deb' >/dev/null && dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./conffiles | grep -qx /etc/meshbroker/env"
check "/etc/meshbroker/env is shipped 0600" sh -c "dpkg-deb -c '$deb' | grep -q '^-rw------- root/root .* ./etc/meshbroker/env$'"
check "postinst applies sysusers.d" sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./postinst | grep -q 'systemd-sysusers.*meshbroker.conf'"
check "postinst applies tmpfiles.d" sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./postinst | grep -q 'systemd-tmpfiles.*--create meshbroker.conf'"
check "postinst enables meshbroker.socket" sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./postinst | grep -q \"deb-systemd-helper enable 'meshbroker.socket'\""

# ------------------------------------------------------------ lintian
echo "== lintian $(basename "$changes")"
lintian --pedantic --display-info "$changes" >"$work/lintian.log" 2>&1
lrc=$?
ne=$(grep -c '^E: ' "$work/lintian.log")
nw=$(grep -c '^W: ' "$work/lintian.log")
ni=$(grep -c '^I: ' "$work/lintian.log")
np=$(grep -c '^P: ' "$work/lintian.log")
grep -E '^[EWIP]: ' "$work/lintian.log" | sed 's/^/   /'
if [ "$ne" = 0 ] && [ $lrc -le 2 ]; then ok "lintian: no errors"; else bad "lintian: $ne errors (exit $lrc)"; fi

# ------------------------------------------------------------ dpkg -i
if [ "$(id -u)" != 0 ]; then
  echo "package-test: not root: dpkg -i and the checks of the installed package skipped"
else
  echo "== dpkg -i $(basename "$ctl") $(basename "$deb")"
  user_before=$(getent passwd meshbroker >/dev/null && echo existed || echo new)
  if dpkg -i "$ctl" "$deb" >"$work/dpkg.log" 2>&1; then
    ok "dpkg -i $(basename "$ctl") $(basename "$deb")"
  else
    bad "dpkg -i $(basename "$ctl") $(basename "$deb")"
    tail -20 "$work/dpkg.log"
  fi
  check "user meshbroker exists ($user_before before the install)" getent passwd meshbroker
  # the user may have been there already (scripts/pg.sh makes it): show that
  # the shipped sysusers.d file creates it on a machine that has none
  sysroot=$work/sysroot
  mkdir -p "$sysroot/etc"
  check "systemd-sysusers creates meshbroker (nologin) in an empty root from the shipped file" sh -c \
    "systemd-sysusers --root='$sysroot' '$x/usr/lib/sysusers.d/meshbroker.conf' &&
     grep -q '^meshbroker:x:[0-9]*:[0-9]*:.*:/nonexistent:/usr/sbin/nologin$' '$sysroot/etc/passwd'"
  check "group meshbroker exists" getent group meshbroker
  check "runtime dir /run/meshbroker is meshbroker:meshbroker 0750" \
    sh -c '[ "$(stat -c "%U:%G %a" /run/meshbroker)" = "meshbroker:meshbroker 750" ]'
  check "config /etc/meshbroker/env is root:root 0600" \
    sh -c '[ "$(stat -c "%U:%G %a" /etc/meshbroker/env)" = "root:root 600" ]'
  check "dpkg knows /etc/meshbroker/env as a conffile" \
    sh -c "dpkg-query -W -f='\${Conffiles}' meshbroker | grep -q '/etc/meshbroker/env'"
  check "meshbroker.socket is enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/meshbroker.socket
  check "meshbroker-accept.service is not enabled" \
    sh -c '! test -e /etc/systemd/system/multi-user.target.wants/meshbroker-accept.service'
  check "meshbroker-relay.service is not enabled (more than one host only)" \
    sh -c '! test -e /etc/systemd/system/multi-user.target.wants/meshbroker-relay.service'
  for u in meshbroker.socket meshbroker@.service meshbroker.slice meshbroker-migrate.service \
           meshbroker-accept.service meshbroker-relay.service; do
    check "systemd-analyze verify $u (installed, no ordering cycle)" sh -c \
      "out=\$(systemd-analyze verify --man=no /lib/systemd/system/$u 2>&1) && ! printf '%s' \"\$out\" | grep -q meshbroker &&
       ! SYSTEMD_LOG_LEVEL=debug systemd-analyze verify --man=no /lib/systemd/system/$u 2>&1 | grep -q 'ordering cycle'"
  done
  for s in meshbroker@.service meshbroker-accept.service meshbroker-migrate.service meshbroker-relay.service; do
    score=$(systemd-analyze security --offline=yes --no-pager "/lib/systemd/system/$s" 2>&1 |
            sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p')
    if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 1.0) }'; then
      ok "systemd-analyze security $s: $score"
    else
      bad "systemd-analyze security $s: ${score:-no score}"
    fi
  done
  check "man meshctl renders from the package" sh -c "MANPAGER=cat man meshctl | grep -q meshctl"
  echo "   (the packages stay installed; remove them with: dpkg -r meshbroker meshctl)"
fi

echo "== figures: $(basename "$deb") $(stat -c %s "$deb") bytes, $(basename "$ctl") $(stat -c %s "$ctl") bytes," \
  "$(basename "$dbg") $(stat -c %s "$dbg") bytes;" \
  "lintian: $ne errors, $nw warnings, $ni info, $np pedantic"
[ "${KEEP_PKG_DIR:-0}" = 1 ] && echo "   build directory kept: $work"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
