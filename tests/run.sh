#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root:
#   bash tests/run.sh
# Installs what it needs (apt-get), then builds and runs, in this order:
#   1. the libFuzzer targets (clang-14, ASan+UBSan), each for a bounded number of inputs;
#   2. the whole suite built with ASan+UBSan (gcc);
#   3. the whole suite in the release build, last, so that ctest's summary closes the output.
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
build() {  # build DIR [TARGET]
  echo "== building $1"
  cmake --build "$1" ${2:+--target "$2"} -- -j"$(nproc)" >"$1.build.log" 2>&1 || { tail -50 "$1.build.log"; exit 1; }
}

if [ "${DKIM_TEST_QUICK:-0}" != 1 ]; then
  echo "== fuzz targets (clang-14, libFuzzer, ASan+UBSan)"
  CC=clang-14 CXX=clang++-14 configure build-fuzz -DDKIM_FUZZ=ON \
    -DDKIM_SANITIZE="address;undefined" -DDKIM_BUILD_TESTS=OFF -DDKIM_BUILD_BENCH=OFF
  build build-fuzz fuzz_targets
  ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$(nproc)"

  echo "== the suite under ASan+UBSan"
  configure build-asan -DDKIM_SANITIZE="address;undefined" -DDKIM_BUILD_BENCH=OFF
  build build-asan
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)"
fi

echo "== the suite"
configure build
build build
ctest --test-dir build --output-on-failure -j"$(nproc)"
