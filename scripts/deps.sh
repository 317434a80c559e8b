#!/bin/sh
# deps.sh — make sure the Debian packages meshbroker needs are installed.
# As root, installs what is missing with apt-get; otherwise names the missing
# packages on one line and fails.  Usage: deps.sh build|run|test|package
# (package: what `make package-test` needs to build and check the .deb)
set -eu
what=${1:-build}
pkgs="gcc make pkg-config libc6-dev libsodium-dev libpq-dev libwslay-dev libcjson-dev libsystemd-dev
      libhttp-parser-dev nettle-dev libcurl4-openssl-dev libseccomp-dev postgresql pgbouncer util-linux"
case $what in
  test) pkgs="$pkgs check python3 python3-websockets python3-nacl python3-pytest python3-psycopg2 systemd procps clang libclang-rt-14-dev man-db binutils python3-seccomp iproute2 nginx-light openssl bash-completion python3-yaml" ;;
  package) pkgs="$pkgs dpkg-dev debhelper fakeroot lintian systemd man-db binutils git" ;;
esac
missing=""
for p in $pkgs; do
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case $st in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "meshbroker: missing Debian packages:$missing (run as root or: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "meshbroker: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# a fresh image has no package lists; refresh them once, quietly
if ! apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
