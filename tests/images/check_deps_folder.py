"""Every build of tests/run.sh configures on a fresh Debian 12 machine that has only what
.ci/install-deps.sh installs (issue 19: a dependency that only a developer's machine had broke
the release stage on a fresh machine, after the fuzz and sanitizer stages had run).

The folder is made by tests/images/prepare-deps-folder (debootstrap, then the install script
inside it; tests/run.sh makes it in the background, the one step besides the installs that
downloads). Here, in a mount namespace of our own, the source tree is bound read-only into it
and each stage of tests/stages.sh is configured there under chroot, as tests/run.sh configures
it: a find_package, find_library or find_program that the folder cannot satisfy fails the
stage and its log is printed. Nothing is built and nothing reaches the network.

usage: check_deps_folder.py SOURCE_DIR DEPS_FOLDER
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from testlib import check, summary  # noqa: E402

STAGES = ["fuzz", "asan", "release", "lint"]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, folder = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2] or "/nonexistent")
    if os.geteuid() != 0:
        print("SKIP: needs root (chroot, mounts)")
        return 77
    if not sys.argv[2] or not os.path.exists(os.path.join(folder, ".complete")):
        check(False, f"the deps folder '{sys.argv[2]}' was made (tests/images/prepare-deps-folder; "
              "tests/run.sh makes it and passes -DDKIM_TEST_DEPS_FOLDER)")
        return summary()
    # A mount point and build folders of this run's own: several runs may share the folder.
    inside = tempfile.mkdtemp(prefix="check-", dir=os.path.join(folder, "tmp"))
    name = os.path.basename(inside)
    try:
        os.makedirs(os.path.join(inside, "src"))
        script = f"""
set -euo pipefail
mount --bind "$1" "$2/src"
mount -o remount,bind,ro "$2/src"
status=0
for stage in {' '.join(STAGES)}; do
  if env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root chroot "$3" \\
      bash -c '. /tmp/{name}/src/tests/stages.sh && configure_stage "$1" /tmp/{name}/src "/tmp/{name}/$1"' _ "$stage"; then
    echo "configured: $stage"
  else
    echo "FAILED: $stage"
    status=1
  fi
done
exit $status
"""
        run = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                              script, "_", source, inside, folder],
                             capture_output=True, text=True)
        print(run.stdout + run.stderr)
        for stage in STAGES:
            ok = f"configured: {stage}" in run.stdout
            check(ok, f"the {stage} stage configures with only what .ci/install-deps.sh installs")
            if not ok:
                log = os.path.join(inside, stage + ".configure.log")
                if os.path.exists(log):
                    with open(log, encoding="utf-8", errors="replace") as f:
                        print(f.read()[-4000:])
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", inside])
    return summary()


if __name__ == "__main__":
    sys.exit(main())
