# The builds tests/run.sh makes, declared once. Sourced (bash) by tests/run.sh, by
# tests/lint/run-clang-tidy and by tests/images/check-deps-folder, which configures every one
# of them in a fresh Debian 12 folder where only .ci/install-deps.sh has installed anything.
#
#   configure_stage STAGE SOURCE_DIR BUILD_DIR [MORE CMAKE ARGUMENTS...]
#
# Stages: fuzz (clang-14, libFuzzer, ASan+UBSan), asan (the suite, gcc, ASan+UBSan), release
# (what ships, -O2, line tables only) and lint (clang-tidy's compilation database: not a unity
# build, configured only). The output goes to BUILD_DIR.configure.log, printed on failure.
#
# Every build goes through ccache when it is installed (.ci/install-deps.sh installs it), with
# the settings that let a clone in another folder use what an earlier clone compiled: the
# base directory is the clone (ccache hashes paths inside it as relative ones), the working
# directory is not hashed, and -ffile-prefix-map writes the clone's path as "." into the
# objects' debug information and __FILE__, so the objects are the same whichever folder made
# them. The unity files CMake writes name their sources by absolute path, so those are found
# by ccache's preprocessor mode (which hashes the line markers relative to the base directory)
# rather than by its direct mode.

dkim_stage_fuzz_runs=100000

stage_args() {  # stage_args STAGE: the stage's own cmake arguments, one per line
  case $1 in
    fuzz) printf '%s\n' -DDKIM_FUZZ=ON -DDKIM_FUZZ_RUNS=$dkim_stage_fuzz_runs \
            "-DDKIM_SANITIZE=address;undefined" -DDKIM_BUILD_TESTS=OFF -DDKIM_BUILD_BENCH=OFF ;;
    asan) printf '%s\n' "-DDKIM_SANITIZE=address;undefined" -DDKIM_BUILD_BENCH=OFF ;;
    # Line tables only (-g1), as the sanitizer builds: full debug information costs a quarter
    # of this build's time and CI reads nothing but backtraces.
    release) printf '%s\n' "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
               "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" ;;
    lint) printf '%s\n' -DCMAKE_UNITY_BUILD=OFF -DDKIM_BUILD_BENCH=OFF ;;
    *) echo "tests/stages.sh: no stage '$1'" >&2; return 2 ;;
  esac
}

configure_stage() {  # configure_stage STAGE SOURCE_DIR BUILD_DIR [MORE CMAKE ARGUMENTS...]
  local stage=$1 src=$2 dir=$3 args=() cc=() launcher=()
  shift 3
  mapfile -t args < <(stage_args "$stage")
  # clang-14 for the fuzz targets (libFuzzer); Debian's default gcc for the rest.
  [ "$stage" = fuzz ] && cc=(env CC=clang-14 CXX=clang++-14)
  command -v ccache >/dev/null 2>&1 &&
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Unity builds: each batch of sources parses the heavy headers (Boost, gtest) once. The
  # lint stage's own argument turns it off again (the last -D wins).
  "${cc[@]}" cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_UNITY_BUILD=ON "${launcher[@]}" \
    "-DCMAKE_C_FLAGS=-ffile-prefix-map=$src=." "-DCMAKE_CXX_FLAGS=-ffile-prefix-map=$src=." \
    "${args[@]}" "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log" >&2; return 1; }
}

# The settings above that live in the environment (ccache reads them at each compilation).
ccache_environment() {  # ccache_environment CLONE_DIR
  export CCACHE_BASEDIR=$1
  export CCACHE_NOHASHDIR=true
  # No sloppiness, whatever a ccache.conf on the machine says: ccache's refusal to cache a
  # compilation that read a header changed while it ran stays (a fresh clone's files are
  # minutes old by the time its builds start, so it costs nothing here).
  export CCACHE_SLOPPINESS=
  export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-25G}
}
