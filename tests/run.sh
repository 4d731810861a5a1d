#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   bash tests/run.sh
# Installs what it needs (apt-get), then builds and runs, in this order:
#   1. the libFuzzer targets (clang-14, ASan+UBSan), each for 100,000 inputs;
#   2. the whole suite built with ASan+UBSan (gcc);
#   3. the release build, last, so that ctest's summary closes the output: the daemons and the
#      CLI as shipped (-O2, every warning an error), the benchmarks run to completion and
#      clang-format. Its tests would repeat what step 2 just ran under the sanitizers, so they
#      are neither built nor run (DKIM_TEST_QUICK=1 builds and runs everything here instead).
# clang-tidy (the lint stage's long part, tests/lint/run-clang-tidy) starts first and runs
# beside all three at the lowest CPU priority, so that it only takes what the builds and
# tests leave idle; its verdict is printed before the release results.
# DKIM_TEST_QUICK=1 runs step 3 only. Benchmarks only run to completion here (label bench);
# their figures come from tests/bench/run-hsm-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/install-deps.sh

configure() {
  local dir=$1
  shift
  # Unity builds: each batch of sources parses the heavy headers (Boost, gtest) once.
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_UNITY_BUILD=ON "$@" \
    >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
}
build() {  # build DIR [TARGET...]
  local dir=$1
  shift
  echo "== building $dir"
  cmake --build "$dir" ${1:+--target "$@"} -- -j"$(nproc)" >"$dir.build.log" 2>&1 ||
    { tail -50 "$dir.build.log"; exit 1; }
}

# The Debian 12 folder the package test installs into (debootstrap from the mirror apt uses,
# like the installs above; about a minute), made beside the first stages.
echo "== a Debian 12 folder for the package test (tests/images/prepare-chroot, in the background)"
bash tests/images/prepare-chroot "$PWD/build-chroot" >build-chroot.prepare.log 2>&1 &
chroot_pid=$!

echo "== clang-tidy, in the background at nice 19"
rm -rf build-lint
# In a process group of its own, so that an early exit stops run-clang-tidy's workers too
# (killing only the subshell left them running, and the next run shared the CPU with them).
# setsid also makes it a session of its own, and with the kernel's autogroup scheduling
# (/proc/sys/kernel/sched_autogroup_enabled) each session gets an equal share of the CPU
# whatever its processes' nice values: the session itself is made nice 19 first, or the
# builds would run at half speed beside it.
setsid -w sh -c '{ echo 19 >/proc/self/autogroup; } 2>/dev/null
  nice -n 19 sh tests/lint/run-clang-tidy build-lint >build-lint.log 2>&1; echo $? >build-lint.status' &
lint_pid=$!
trap 'kill -- -$lint_pid 2>/dev/null || true' EXIT

if [ "${DKIM_TEST_QUICK:-0}" != 1 ]; then
  echo "== fuzz targets (clang-14, libFuzzer, ASan+UBSan)"
  CC=clang-14 CXX=clang++-14 configure build-fuzz -DDKIM_FUZZ=ON -DDKIM_FUZZ_RUNS=100000 \
    -DDKIM_SANITIZE="address;undefined" -DDKIM_BUILD_TESTS=OFF -DDKIM_BUILD_BENCH=OFF
  build build-fuzz fuzz_targets
  ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$(nproc)"

  echo "== the suite under ASan+UBSan"
  configure build-asan -DDKIM_SANITIZE="address;undefined" -DDKIM_BUILD_BENCH=OFF
  build build-asan
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -LE package
fi

echo "== the release build"
# Line tables only (-g1), as the sanitizer builds: full debug information costs a quarter of
# this build's time and CI reads nothing but backtraces.
configure build -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
# The results are printed once clang-tidy is done, so that ctest's summary still closes the
# output.
status=0
wait "$chroot_pid" || { echo "tests/images/prepare-chroot failed:"; tail -20 build-chroot.prepare.log; }
if [ "${DKIM_TEST_QUICK:-0}" = 1 ]; then
  build build
  ctest --test-dir build --output-on-failure -j"$(nproc)" -E '^clang_tidy$' \
    >build.ctest.log 2>&1 || status=$?
else
  build build shipped bench_targets
  ctest --test-dir build --output-on-failure -j"$(nproc)" -E '^clang_tidy$' -L 'bench|lint|package' \
    >build.ctest.log 2>&1 || status=$?
fi
wait "$lint_pid" || true
trap - EXIT
if [ "$(cat build-lint.status 2>/dev/null)" = 0 ]; then
  echo "== clang-tidy: no findings"
else
  echo "== clang-tidy: findings (build-lint.log)"
  grep -E 'warning:|error:' -A3 build-lint.log | head -200
  status=1
fi
cat build.ctest.log
exit "$status"
