#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   bash tests/run.sh
# Installs what it needs (apt-get), then builds and runs, in this order:
#   1. the libFuzzer targets (clang-14, ASan+UBSan), each for 100,000 inputs;
#   2. the whole suite built with ASan+UBSan (gcc);
#   3. the release build, last, so that ctest's summary closes the output: the daemons and the
#      CLI as shipped (-O2, every warning an error), the benchmarks run to completion,
#      clang-format, the package tests. Its tests would repeat what step 2 just ran under the
#      sanitizers, so they are neither built nor run (DKIM_TEST_QUICK=1 builds and runs
#      everything here instead).
# The builds are declared once, in tests/stages.sh, and go through ccache: a clone in another
# folder of a machine that has run the suite before compiles only what changed.
# Beside them, in the background: clang-tidy (tests/lint/run-clang-tidy, at the lowest CPU
# priority, so that it only takes what the builds and tests leave idle; files analysed clean
# before are not analysed again), and the two Debian 12 folders the package tests use (made
# once per machine and version of their package lists, under ~/.cache/dkim-appliance).
# At the end, just before the release stage's ctest summary, a table says where the time went:
# each stage's wall time and CPU time.
# DKIM_TEST_QUICK=1 runs step 3 only. Benchmarks only run to completion here (label bench);
# their figures come from tests/bench/run-*-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
clone=$PWD
# The daemons' tests run the builds' binaries as unprivileged users (nobody, the service users
# `up` makes), so those must be able to enter the clone: a clone made in `mktemp -d` is 0700.
# Opened for search (o+x, not read) here; an ancestor that stays closed is named, and nothing runs.
if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$clone/tests"; then
  chmod o+x "$clone"
  if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$clone/tests"; then
    dir=$clone
    while [ "$dir" != / ] && [ "$(stat -c %A "$dir" | cut -c10)" != - ]; do dir=$(dirname "$dir"); done
    echo "tests/run.sh: the user nobody cannot enter $clone (the folder $dir lets others no" \
      "search): the daemons' tests run binaries from here as unprivileged users" >&2
    exit 1
  fi
fi
# shellcheck source=stages.sh
. tests/stages.sh
ccache_environment "$clone"
export CCACHE_STATSLOG=$clone/build-ccache.log
rm -f "$CCACHE_STATSLOG"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/dkim-appliance
mkdir -p "$cache"

# --- where the time goes ------------------------------------------------------------------
timing=$clone/build-timing
rm -rf "$timing"
mkdir -p "$timing"
run_started=$(date +%s.%N)

seconds_of_times() {  # the CPU seconds (user+system, self and children) in a `times` output
  tr ' ' '\n' <"$1" | sed -n 's/^\([0-9]*\)m\([0-9.]*\)s$/\1 \2/p' |
    awk '{ s += $1 * 60 + $2 } END { printf "%.0f", s }'
}
record() {  # record NAME START END STATUS: one row of the table
  local cpu=0
  [ -f "$timing/$1.times" ] && cpu=$(seconds_of_times "$timing/$1.times")
  printf '%s\t%s\t%s\t%s\n' "$1" "$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", b - a }')" \
    "$cpu" "$4" >>"$timing/table"
}
# stage NAME COMMAND...: runs COMMAND in a subshell of its own and records its wall time and the
# CPU time of everything it ran. Returns COMMAND's status.
stage() {
  local name=$1 start status=0
  shift
  start=$(date +%s.%N)
  ( "$@" && rc=0 || rc=$?; times >"$timing/$name.times"; exit $rc ) || status=$?
  record "$name" "$start" "$(date +%s.%N)" "$status"
  return "$status"
}
# background_stage NAME COMMAND...: the same, in the background; its row is added when
# finish_background_stage NAME waits for it.
background_stage() {
  local name=$1
  shift
  (
    start=$(date +%s.%N)
    "$@" && rc=0 || rc=$?
    times >"$timing/$name.times"
    echo "$start $(date +%s.%N) $rc" >"$timing/$name.background"
    exit $rc
  ) &
  eval "background_pid_${name//[^a-z]/_}=$!"
}
finish_background_stage() {  # finish_background_stage NAME: waits, records; its status
  local name=$1 pid start end rc
  eval "pid=\${background_pid_${name//[^a-z]/_}:-}"
  [ -n "$pid" ] || return 0
  wait "$pid" || true
  eval "background_pid_${name//[^a-z]/_}="
  read -r start end rc <"$timing/$name.background" 2>/dev/null || { start=0 end=0 rc=1; }
  record "$name" "$start" "$end" "$rc"
  return "$rc"
}
format_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
print_table() {
  local total_wall total_cpu=0 name wall cpu status
  total_wall=$(awk -v a="$run_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  echo "== where the time went (wall clock; CPU = user+system time of the stage's processes; $(nproc) cores)"
  printf '%-44s %9s %9s  %s\n' stage wall CPU ""
  while IFS=$'\t' read -r name wall cpu status; do
    total_cpu=$((total_cpu + cpu))
    printf '%-44s %9s %9s  %s\n' "$name" "$(format_duration "$wall")" "$(format_duration "$cpu")" \
      "$([ "$status" = 0 ] || echo "failed ($status)")"
  done <"$timing/table"
  printf '%-44s %9s %9s\n' "the whole run" "$(format_duration "$total_wall")" \
    "$(format_duration "$total_cpu")"
  if [ -s "$CCACHE_STATSLOG" ]; then
    echo "ccache: $(ccache --show-log-stats 2>/dev/null | awk '/^ *Hits:/ { $1 = ""; h = $0 }
      /^ *Misses:/ { $1 = ""; m = $0 } END { print "hits" h ", misses" m }')"
  fi
  grep -h '^clang-tidy-cached:' build-lint.log 2>/dev/null || true
}
stop_background() {
  [ -n "${lint_pid:-}" ] && [ -s build-lint.pgid ] && kill -- -"$(cat build-lint.pgid)" 2>/dev/null || true
  jobs -p | xargs -r kill 2>/dev/null || true
}
# The failed checks of each failed test, last: CI shows only the tail of a run's output, and
# "The following tests FAILED" alone does not say why.
print_failed_checks() {
  local dir failed name
  for dir in build-fuzz build-asan build; do
    failed=$dir/Testing/Temporary/LastTestsFailed.log
    [ -s "$failed" ] && [ -s "$dir/Testing/Temporary/LastTest.log" ] || continue
    while IFS=: read -r _ name; do
      echo "== why $name failed ($dir; its whole output: $dir/Testing/Temporary/LastTest.log)"
      awk -v name="$name" '
        $0 ~ "^[0-9]+/[0-9]+ Testing: " && $NF == name { inside = 1; next }
        inside && $0 ~ "^\"" && index($0, "\"" name "\" end time:") == 1 { inside = 0 }
        inside && /^(FAIL  |\[  FAILED  \]|.*: Failure$|==[0-9]+==ERROR|.*runtime error:|Traceback|.*Error: )/ {
          print substr($0, 1, 300); if (++n == 8) exit }' "$dir/Testing/Temporary/LastTest.log"
    done <"$failed"
  done
}
on_exit() {
  local rc=$?
  stop_background
  # An early stop (a failed stage) still says where the time went, and why.
  [ "$rc" = 0 ] || [ ! -s "$timing/table" ] || print_table
  [ "$rc" = 0 ] || print_failed_checks
}
trap on_exit EXIT

build() {  # build DIR [TARGET...]
  local dir=$1
  shift
  echo "== building $dir"
  cmake --build "$dir" ${1:+--target "$@"} -- -j"$(nproc)" >"$dir.build.log" 2>&1 ||
    { tail -50 "$dir.build.log"; return 1; }
}

stage install-deps bash .ci/install-deps.sh

# The Debian 12 folders of the package tests, made beside the first stages, each once per
# version of its package list (debootstrap from the mirror apt uses, like the installs above):
# the one the Debian package is installed into (tests/images/prepare-chroot, about a minute),
# and the one where .ci/install-deps.sh alone must satisfy every build's configuration
# (tests/images/prepare-deps-folder, about 10 minutes the first time).
chroot_dir=$cache/package-chroot-$(sha256sum tests/images/prepare-chroot | cut -c1-16)
echo "== the package tests' Debian 12 folders (in the background; reused when made before)"
background_stage package-chroot bash tests/images/prepare-chroot "$chroot_dir" \
  >build-chroot.prepare.log 2>&1
background_stage deps-folder bash tests/images/prepare-deps-folder "$cache/deps-folders" \
  >build-deps-folder.prepare.log 2>&1

echo "== clang-tidy, in the background at nice 19"
rm -rf build-lint build-lint.pgid
# In a process group of its own, so that an early exit stops its workers too. setsid also
# makes it a session of its own, and with the kernel's autogroup scheduling
# (/proc/sys/kernel/sched_autogroup_enabled) each session gets an equal share of the CPU
# whatever its processes' nice values: the session itself is made nice 19 first, or the
# builds would run at half speed beside it.
background_stage clang-tidy setsid -w bash -c 'echo $$ >build-lint.pgid
  { echo 19 >/proc/self/autogroup; } 2>/dev/null
  nice -n 19 bash tests/lint/run-clang-tidy build-lint >build-lint.log 2>&1'
lint_pid=$background_pid_clang_tidy

# Every build is configured first: a dependency that is missing stops the run in its first
# minute, not after the stages before the one that needs it.
release_args=(-DDKIM_TEST_CHROOT="$chroot_dir"
  -DDKIM_TEST_DEPS_FOLDER="$(bash tests/images/prepare-deps-folder --path "$cache/deps-folders")")
configure_all() {
  if [ "${DKIM_TEST_QUICK:-0}" != 1 ]; then
    configure_stage fuzz "$clone" build-fuzz || return 1
    configure_stage asan "$clone" build-asan || return 1
  fi
  configure_stage release "$clone" build "${release_args[@]}"
}
stage "configure every build" configure_all

if [ "${DKIM_TEST_QUICK:-0}" != 1 ]; then
  echo "== fuzz targets (clang-14, libFuzzer, ASan+UBSan)"
  stage "fuzz: build" build build-fuzz fuzz_targets
  stage "fuzz: $dkim_stage_fuzz_runs inputs per target" \
    ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$(nproc)"

  echo "== the suite under ASan+UBSan"
  stage "asan: build" build build-asan
  # Twice as many tests as cores: the integration tests spend most of their time waiting (for
  # daemons, DNS, SMTP peers, TOTP steps), and at one test per core half the CPU stood idle
  # (issue 19: 18m25s of wall time for 18m48s of CPU on 2 cores).
  stage "asan: every test but the package's" \
    ctest --test-dir build-asan --output-on-failure -j"$(($(nproc) * 2))" -LE package
fi

echo "== the release build"
status=0
if [ "${DKIM_TEST_QUICK:-0}" = 1 ]; then
  stage "release: build" build build
else
  stage "release: build" build build shipped bench_targets
fi
finish_background_stage package-chroot ||
  { echo "tests/images/prepare-chroot failed:"; tail -20 build-chroot.prepare.log; }
finish_background_stage deps-folder ||
  { echo "tests/images/prepare-deps-folder failed:"; tail -30 build-deps-folder.prepare.log; }
# The results are printed once clang-tidy is done, so that ctest's summary still closes the
# output.
if [ "${DKIM_TEST_QUICK:-0}" = 1 ]; then
  stage "release: every test" ctest --test-dir build --output-on-failure -j"$(nproc)" \
    -E '^clang_tidy$' >build.ctest.log 2>&1 || status=$?
else
  stage "release: benchmarks, lint, package" ctest --test-dir build --output-on-failure \
    -j"$(nproc)" -E '^clang_tidy$' -L 'bench|lint|package' >build.ctest.log 2>&1 || status=$?
fi
lint_status=0
finish_background_stage clang-tidy || lint_status=$?
lint_pid=
if [ "$lint_status" = 0 ]; then
  echo "== clang-tidy: no findings"
else
  echo "== clang-tidy: findings (build-lint.log)"
  grep -E 'warning:|error:' -A3 build-lint.log | head -200
  status=1
fi
trap - EXIT
print_table
cat build.ctest.log
exit "$status"
