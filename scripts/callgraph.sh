#!/bin/sh
# callgraph.sh — prove that the worker's modules call each other without a
# cycle (docs/design.md "Worker").  Two independent views, each fed to tsort:
#   1. symbols: for each worker object, the worker symbols it uses (nm -u)
#      mapped to the object that defines them (nm --defined-only): a call or
#      a reference to a function, as the linker sees it;
#   2. includes: worker/X.c including "worker/Y.h" where worker/Y.c exists
#      (worker.h, the context struct, and header-only helpers are no module).
# Prints the edges with -v; exits 1 and names the loop when there is one.
# Usage: scripts/callgraph.sh [-v] [BUILD_DIR]   (default build; run make first)
set -eu
verbose=0
[ "${1:-}" = "-v" ] && { verbose=1; shift; }
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
objdir="$build/obj/worker"
[ -d "$objdir" ] || { echo "callgraph: no $objdir (run make build first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the objects of the modules that exist now (a stale one of a removed file is skipped)
objs=$(for c in worker/*.c; do echo "$objdir/$(basename "$c" .c).o"; done)
for o in $objs; do [ -f "$o" ] || { echo "callgraph: missing $o (run make build first)" >&2; exit 2; }; done

# symbol -> defining module
for o in $objs; do
	m=$(basename "$o" .o)
	nm --defined-only "$o" | awk -v m="$m" '$2 ~ /^[TDRB]$/ { print $3, m }'
done | sort -u >"$tmp/defs"

: >"$tmp/sym-edges"
for o in $objs; do
	m=$(basename "$o" .o)
	nm -u "$o" | awk '{ print $2 }' | sort -u >"$tmp/undef"
	join "$tmp/undef" "$tmp/defs" | awk -v m="$m" '$2 != m { print m, $2 }' >>"$tmp/sym-edges"
done
sort -u -o "$tmp/sym-edges" "$tmp/sym-edges"

: >"$tmp/inc-edges"
for c in worker/*.c; do
	m=$(basename "$c" .c)
	sed -nE 's|^#include "worker/([a-z_]+)\.h".*|\1|p' "$c" | while read -r h; do
		if [ "$h" != "$m" ] && [ -f "worker/$h.c" ]; then echo "$m $h"; fi
	done
done | sort -u >"$tmp/inc-edges"

rc=0
for view in sym inc; do
	# a node with no edges still counts: pair every module with itself
	{ cat "$tmp/$view-edges"; for c in worker/*.c; do m=$(basename "$c" .c); echo "$m $m"; done; } >"$tmp/$view-in"
	if [ $verbose -eq 1 ]; then
		echo "== $view edges (caller callee)"
		cat "$tmp/$view-edges"
	fi
	if ! tsort "$tmp/$view-in" >/dev/null 2>"$tmp/$view-err"; then
		echo "callgraph: $view view has a cycle:" >&2
		sed 's/^/  /' "$tmp/$view-err" >&2
		rc=1
	else
		echo "callgraph: $view view: $(wc -l <"$tmp/$view-edges") edges among $(ls worker/*.c | wc -l) modules, no cycle"
	fi
done
exit $rc
