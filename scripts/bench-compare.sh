#!/usr/bin/env bash
# bench-compare.sh — the single-host figures of two builds back to back on
# this machine (issue 24 acceptance 5: with one host and HOST_ID unset, make
# bench's figures are within noise of before).  What `bash bench/run.sh
# --compare REV` runs:
#
#   bash bench/run.sh --compare REV [--against REV2] [--rounds N] [meshbench options]
#
# REV's tree (git archive, no checkout: the work tree and .git are left
# alone) is built in /tmp/meshbroker-compare-build-<sha> (kept: a second
# comparison reuses it); "now" is this tree's build/bin (make build first),
# or REV2 built the same way.  Then N rounds (default 2), each one run of
# bench/run.sh with REV's binaries and one with now's (MESHBROKER_BIN), the
# same bench client (this tree's bench/meshbench.c) and the same options,
# alternately: before, now, before, now.  The default options are the
# message and hello rows: --only burst,msg,pairs,hello (no cross-host part;
# the single-host broker runs with HOST_ID unset).  Nothing is appended to
# bench/RESULTS.md; the summary (every figure's median per run, and now /
# before over the rounds) is printed and kept with each run's output in a
# directory under /tmp, named at the end.
#
# The figures of a shared machine are noisy: each run's load average is
# printed beside it.  Find the commit before multi-host with
#   git log --oneline --merges | grep -i multihost   (its first parent: REV^1)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

before= against= rounds=2
args=()
while [ $# -gt 0 ]; do
  case $1 in
  --compare | --against | --rounds)
    [ $# -ge 2 ] || { echo "bench-compare: $1 needs a value" >&2; exit 2; }
    case $1 in --compare) before=$2 ;; --against) against=$2 ;; --rounds) rounds=$2 ;; esac
    shift 2 ;;
  --compare=*) before=${1#*=}; shift ;;
  --against=*) against=${1#*=}; shift ;;
  --rounds=*) rounds=${1#*=}; shift ;;
  *) args+=("$1"); shift ;;
  esac
done
[ -n "$before" ] || { echo "usage: bench/run.sh --compare REV [--against REV2] [--rounds N] [meshbench options]" >&2; exit 2; }
case $rounds in '' | *[!0-9]*) echo "bench-compare: --rounds takes a number" >&2; exit 2 ;; esac
[ "$rounds" -ge 1 ] && [ "$rounds" -le 5 ] || { echo "bench-compare: --rounds is 1 to 5" >&2; exit 2; }
has_only=0
for a in "${args[@]+"${args[@]}"}"; do case $a in --only | --only=*) has_only=1 ;; esac; done
[ "$has_only" = 1 ] || args+=(--only burst,msg,pairs,hello)

# build REV from git archive (cached by its commit); prints the bin directory
build_rev() {
  local rev=$1 sha dir
  sha=$(git -C "$root" rev-parse --verify "$rev^{commit}") || { echo "bench-compare: no commit $rev" >&2; return 1; }
  dir=/tmp/meshbroker-compare-build-${sha:0:12}
  if [ ! -x "$dir/src/build/bin/meshbroker-worker" ] || [ ! -x "$dir/src/build/bin/meshbroker-accept" ] ||
    [ ! -x "$dir/src/build/bin/meshctl" ]; then
    echo "bench-compare: building $rev (${sha:0:12}) in $dir" >&2
    rm -rf "$dir" && mkdir -p "$dir/src"
    git -C "$root" archive --format=tar "$sha" | tar -x -C "$dir/src"
    make -C "$dir/src" build -j2 GIT_SHA="${sha:0:7}" >"$dir/build.log" 2>&1 ||
      { tail -n 20 "$dir/build.log" >&2; echo "bench-compare: the build of $rev failed ($dir/build.log)" >&2; return 1; }
  fi
  echo "$dir/src/build/bin"
}
describe() { git -C "$root" log -1 --format='%h %s' "$1" | cut -c1-100; }

bin_before=$(build_rev "$before")
if [ -n "$against" ]; then
  bin_now=$(build_rev "$against")
  now_desc="$(describe "$against") (built from git archive)"
else
  bin_now=$root/build/bin
  [ -x "$bin_now/meshbroker-worker" ] || { echo "bench-compare: $bin_now is not built (make build)" >&2; exit 2; }
  dirty=$([ -n "$(git -C "$root" status --porcelain -- accept worker shm db proto relay common 2>/dev/null)" ] &&
    echo ' + uncommitted changes' || true)
  now_desc="this tree: $(describe HEAD)$dirty, binaries built $(date -u -r "$bin_now/meshbroker-worker" '+%Y-%m-%d %H:%M UTC')"
fi

out=$(mktemp -d /tmp/meshbroker-compare.XXXXXX)
echo "bench-compare: before = $(describe "$before"); now = $now_desc" >&2
echo "bench-compare: $rounds round(s) of before, now; options: ${args[*]}; output in $out" >&2
runs=()
loads=()
rc=0
t0=$(date +%s)
for r in $(seq 1 "$rounds"); do
  for side in before now; do
    [ "$side" = before ] && b=$bin_before || b=$bin_now
    l0=$(cut -d' ' -f1-3 /proc/loadavg)
    s0=$(date +%s)
    echo "bench-compare: round $r, $side (load average $l0)" >&2
    src=0
    MESHBROKER_BIN=$b BENCH_NO_RESULTS=1 BENCH_XHOST=0 BENCH_SAVE="$out/$side.$r.tsv" \
      bash "$root/bench/run.sh" "${args[@]}" >"$out/$side.$r.out" 2>"$out/$side.$r.err" || src=$?
    l1=$(cut -d' ' -f1-3 /proc/loadavg)
    [ "$src" = 0 ] || { rc=1; echo "bench-compare: round $r, $side: exit $src (see $out/$side.$r.out)" >&2; }
    runs+=("$side.$r")
    loads+=("$side $r: exit $src, $(( $(date +%s) - s0 )) s, load average $l0 before, $l1 after")
  done
done

summary() {
  echo "## Single-host figures, before and now, alternately ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "before: $(describe "$before") — $bin_before"
  echo "now: $now_desc — $bin_now"
  echo "machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores;" \
    "options: ${args[*]}; medians of each run's repetitions"
  echo
  for l in "${loads[@]}"; do echo "- $l"; done
  echo
  # one line per (benchmark, metric): each run's median, then now / before
  # (the mean of now's medians over the mean of before's)
  awk -F'\t' -v runs="${runs[*]}" '
    function median(s,   n, v, i, j, t) {
      n = split(s, v, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    BEGIN { for (i = 1; i < ARGC; i++) idx[ARGV[i]] = i }
    { f = idx[FILENAME] }
    $1 == "R" && $3 > 0 && $5 != "payload MiB/s" && $5 != "ok" {
      k = $4 SUBSEP $5
      if (!(k in seen)) { seen[k] = 1; order[++nk] = k; bench[k] = $4; metric[k] = $5; prec[k] = $2 }
      vals = ""
      for (i = 7; i <= NF; i++) vals = vals " " $i
      med[k, f] = median(vals); have[k, f] = 1
    }
    END {
      nr = split(runs, rn, " ")
      printf "| benchmark | metric |"
      for (i = 1; i <= nr; i++) printf " %s |", rn[i]
      printf " now / before |\n|---|---|"
      for (i = 1; i <= nr; i++) printf "--:|"
      printf "--:|\n"
      last = ""
      for (o = 1; o <= nk; o++) {
        k = order[o]
        printf "| %s | %s |", (bench[k] == last ? "" : bench[k]), metric[k]
        last = bench[k]
        sb = nb = sn = nn = 0
        for (i = 1; i <= nr; i++) {
          if (!((k, i) in have)) { printf " — |"; continue }
          printf " %.*f |", prec[k], med[k, i]
          if (rn[i] ~ /^before/) { sb += med[k, i]; nb++ } else { sn += med[k, i]; nn++ }
        }
        if (nb && nn && sb != 0) printf " %.2f |\n", (sn / nn) / (sb / nb)
        else printf " — |\n"
      }
    }' $(for r in "${runs[@]}"; do echo "$out/$r.tsv"; done)
  echo
  echo "Times and rates: now / before above 1 is more for now (for ms, slower; for /s, faster). $(( $(date +%s) - t0 )) s in all."
}
missing=0
for r in "${runs[@]}"; do [ -s "$out/$r.tsv" ] || missing=1; done
if [ "$missing" = 1 ]; then
  echo "bench-compare: some runs left no figures: see $out/*.out and *.err" >&2
  rc=1
fi
# runs without figures get an empty file: their column shows dashes
for r in "${runs[@]}"; do [ -f "$out/$r.tsv" ] || : >"$out/$r.tsv"; done
summary | tee "$out/summary.md"
echo "bench-compare: every run's output and figures are in $out" >&2
exit "$rc"
