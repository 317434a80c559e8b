#!/bin/sh
# callgraph.sh — prove that each program's modules call each other without a
# cycle (docs/design.md "Worker"; issue 21: every program, in `make test`).
# A program is the directories whose modules are linked into it:
#   worker   worker/ + common/ proto/ shm/ db/     (meshbroker-worker)
#   accept   accept/ + common/ proto/ shm/ db/     (meshbroker-accept)
#   meshctl  cli/ + common/ proto/ shm/ db/        (meshctl)
#   relay    relay/ + common/ proto/ shm/ db/      (meshbroker-relay)
#   shm      shm/                                  (the libraries on their own)
#   db       db/
# A module is one .c file (dir/name).  Two independent views per program:
#   1. symbols: for each object, the program's symbols it uses (nm -u) mapped
#      to the object that defines them (nm --defined-only): a call or a
#      reference to a function, as the linker sees it;
#   2. includes: dir/X.c including "dir2/Y.h" where dir2/Y.c exists (a
#      context struct or a header-only helper is no module).
# A cycle is a strongly connected component of more than one module; each is
# printed per program and view.  A cycle whose modules all lie in one line of
# scripts/callgraph.allow ("program module module ...", a temporary, documented
# exception) is printed as allowed; any other fails.  Exits 1 on a cycle that is
# not allowed, 2 when the objects are missing.  -v prints the edges.
# Usage: scripts/callgraph.sh [-v] [BUILD_DIR]   (default build; run make first)
set -eu
verbose=0
[ "${1:-}" = "-v" ] && { verbose=1; shift; }
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
allow=scripts/callgraph.allow
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

programs="worker:worker,common,proto,shm,db accept:accept,common,proto,shm,db relay:relay,common,proto,shm,db meshctl:cli,common,proto,shm,db shm:shm db:db"

# strongly connected components of more than one node, one per line (sorted
# members), from "a b" edge lines: reachability by Warshall's closure, fine
# for the few dozen modules of a program
scc() {
	awk '
	{ if (!($1 in id)) { id[$1] = n; name[n++] = $1 }
	  if (!($2 in id)) { id[$2] = n; name[n++] = $2 }
	  r[id[$1], id[$2]] = 1 }
	END {
		for (k = 0; k < n; k++) for (i = 0; i < n; i++) if (r[i, k])
			for (j = 0; j < n; j++) if (r[k, j]) r[i, j] = 1
		for (i = 0; i < n; i++) {
			if (done[i]) continue
			line = ""; m = 0
			for (j = 0; j < n; j++) if (j == i || (r[i, j] && r[j, i])) { done[j] = 1; line = line " " name[j]; m++ }
			if (m > 1) print line
		}
	}' "$1" | while read -r comp; do
		printf '%s\n' $comp | sort | tr '\n' ' ' | sed 's/ $//'
		echo
	done
}

# 0 when every module of the component (words after the first argument) is in
# one allow-list line of program $1
allowed() {
	prog=$1
	shift
	[ -f "$allow" ] || return 1
	comp="$*"
	sed 's/#.*//' "$allow" | while read -r p mods; do
		[ "$p" = "$prog" ] || continue
		ok=1
		for m in $comp; do
			case " $mods " in *" $m "*) ;; *) ok=0 ;; esac
		done
		[ $ok -eq 1 ] && { echo yes; break; }
	done | grep -q yes
}

rc=0
for spec in $programs; do
	prog=${spec%%:*}
	dirs=$(echo "${spec#*:}" | tr ',' ' ')
	: >"$tmp/mods"
	for d in $dirs; do
		for c in "$d"/*.c; do
			[ -f "$c" ] || continue
			o="$build/obj/${c%.c}.o"
			[ -f "$o" ] || { echo "callgraph: missing $o (run make build first)" >&2; exit 2; }
			echo "${c%.c} $o" >>"$tmp/mods"
		done
	done

	# symbol -> defining module
	while read -r m o; do
		nm --defined-only "$o" | awk -v m="$m" '$2 ~ /^[TDRB]$/ { print $3, m }'
	done <"$tmp/mods" | sort -u >"$tmp/defs"
	: >"$tmp/sym-edges"
	while read -r m o; do
		nm -u "$o" | awk '{ print $2 }' | sort -u >"$tmp/undef"
		join "$tmp/undef" "$tmp/defs" | awk -v m="$m" '$2 != m { print m, $2 }' >>"$tmp/sym-edges"
	done <"$tmp/mods"
	sort -u -o "$tmp/sym-edges" "$tmp/sym-edges"

	: >"$tmp/inc-edges"
	while read -r m o; do
		sed -nE 's|^#include "([a-z_]+)/([a-z_]+)\.h".*|\1 \2|p' "$m.c" | while read -r d h; do
			case " $dirs " in *" $d "*) ;; *) continue ;; esac
			if [ "$d/$h" != "$m" ] && [ -f "$d/$h.c" ]; then echo "$m $d/$h"; fi
		done
	done <"$tmp/mods" | sort -u >"$tmp/inc-edges"

	nmods=$(wc -l <"$tmp/mods")
	for view in sym inc; do
		if [ $verbose -eq 1 ]; then
			echo "== $prog: $view edges (caller callee)"
			cat "$tmp/$view-edges"
		fi
		scc "$tmp/$view-edges" >"$tmp/cycles"
		if [ ! -s "$tmp/cycles" ]; then
			echo "callgraph: $prog: $view view: $(wc -l <"$tmp/$view-edges") edges among $nmods modules, no cycle"
			continue
		fi
		while read -r comp; do
			# shellcheck disable=SC2086
			if allowed "$prog" $comp; then
				echo "callgraph: $prog: $view view: allowed cycle ($allow): $comp"
			else
				echo "callgraph: $prog: $view view has a cycle: $comp" >&2
				rc=1
			fi
		done <"$tmp/cycles"
	done
done
# an allow-list line whose cycle is gone is worth removing
if [ -f "$allow" ] && [ $rc -eq 0 ]; then
	sed 's/#.*//' "$allow" | grep -q '[^[:space:]]' && echo "callgraph: allow-list in use: $allow (temporary; see the file)"
fi
exit $rc
