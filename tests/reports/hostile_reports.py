#!/usr/bin/python3
"""Our report parser on hostile files (issue 21): refused, quickly, in bounded memory, naming
the cap or the construct, and never reading what an external entity points at.

  hostile_reports.py DKIM_APPLIANCE [--sanitized] [--keep DIR]

The files: generate_reports.py --hostile with its sizes set from our Limits defaults (read
from appliance/reports/include/dkim/reports/model.hpp: the zip member and the gzip bomb
1 MiB over max_decompressed, max_zip_members + 1 members), and a few made here to reach the
caps the generator's files do not (its whitespace bombs stop at the ratio cap first): a
bomb under the ratio cap that crosses max_decompressed, a bare file over max_input, text
over max_text, and each cap's boundary (at the cap: read; one over: refused).

Each file goes through `DKIM_APPLIANCE reports parse --json FILE` alone, timed, with its peak
RSS (wait4). Refused means: exit 2, no report on stdout (zip-many-members: only the members
before the cap), and a line on stderr naming the file and the reason. XXE-SECRET never appears
in any output, and (by strace, where it is usable) the files the external entities point at
are never opened. Mail::DMARC runs only on the two gzip files that our parser reads by its
stated choice (trailing-garbage, two-members: the first member only), never on the entity
files: it expands external entities.

--sanitized (a DKIM_SANITIZE build, ctest passes it): the time bounds are 5 times longer and
the RSS bound is not checked (ASan's shadow memory).

Exit 0 when every file is handled as expected, 1 otherwise.
Standard library only: run with /usr/bin/python3.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(SOURCE, "appliance", "reports", "include", "dkim", "reports", "model.hpp")
GENERATE = os.path.join(HERE, "generate_reports.py")
sys.path.insert(0, HERE)
import compare_with_oracles as oracles  # noqa: E402

MIB = 1 << 20
SECRETS = ("XXE-SECRET",)  # both secrets of generate_reports.py start so
QUICK = 3.0  # seconds a file may take ("well under a few seconds")
# A file that must be inflated up to max_decompressed before the cap is reached costs what
# inflating that much costs (about 6 s of one core here for 512 MiB under load).
SLOW = 40.0
MAX_RSS_MIB = 64


def read_limits():
    """Limits' defaults from model.hpp: {name: int}."""
    with open(MODEL, encoding="utf-8") as f:
        text = f.read()
    body = re.search(r"struct Limits \{(.*?)\n\};", text, re.S)
    if not body:
        raise RuntimeError("%s: no struct Limits" % MODEL)
    limits = {}
    for name, expr in re.findall(r"std::size_t (max_\w+) = ([^;]+);", body.group(1)):
        e = expr.replace("std::size_t", "").replace("'", "").replace("{", "").replace("}", "").strip()
        m = re.fullmatch(r"(\d+)(?:\s*<<\s*(\d+))?", e)
        if not m:
            raise RuntimeError("%s: cannot read %s = %s" % (MODEL, name, expr))
        limits[name] = int(m.group(1)) << int(m.group(2) or 0)
    want = {"max_input", "max_decompressed", "max_ratio", "max_zip_members", "max_depth", "max_text"}
    if not want <= set(limits):
        raise RuntimeError("%s: Limits lacks %s" % (MODEL, ", ".join(sorted(want - set(limits)))))
    return limits


def mib(n):
    return "%d MiB" % (n >> 20)


# --- files made here ----------------------------------------------------------------------------

def small_report(folder):
    """A valid one-record report (from generate_reports.py) as text, cut before its record:
    (head, record and tail)."""
    out = os.path.join(folder, "base.xml")
    subprocess.run(["/usr/bin/python3", GENERATE, "--records", "1", "--seed", "77", "--out", out],
                   check=True, stderr=subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        xml = f.read()
    os.unlink(out)
    cut = xml.index("  <record>")
    return xml[:cut], xml[cut:]


def make_extra(folder, limits):
    """The files made here: [(name, expectation)] (see expect())."""
    head, tail = small_report(folder)
    made = []

    def put(name, data, expectation):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        made.append((name, expectation))

    # A bare file 1 MiB over max_input: white space between the header and the record.
    with open(os.path.join(folder, "input-over-cap.xml"), "wb") as f:
        f.write(head.encode())
        block = b" " * MIB
        for _ in range(limits["max_input"] // MIB + 1):
            f.write(block)
        f.write(tail.encode())
    made.append(("input-over-cap.xml", ("refused", r"larger than %s" % mib(limits["max_input"]), QUICK)))

    # gzip inflating to max_decompressed + 1 MiB at about 600:1, under max_ratio: white space
    # with a newline every 4 KiB on average, at places that differ from one MiB to the next
    # (so that the ratio stays under the cap), between the header and the record.
    assert limits["max_ratio"] > 700, "the bomb below is made for a ratio cap over 700"
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [gz.compress(head.encode())]
    state = 12345
    blocks = []
    for _ in range(4):
        block = bytearray(b" " * MIB)
        for _ in range(256):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            block[state % MIB] = 0x0A
        blocks.append(bytes(block))
    for i in range(limits["max_decompressed"] // MIB + 1):
        parts.append(gz.compress(blocks[i % 4]))
    parts.append(gz.compress(tail.encode()))
    parts.append(gz.flush())
    put("decompressed-over-cap.xml.gz", b"".join(parts),
        ("refused", r"more than %s" % mib(limits["max_decompressed"]), SLOW))

    # Text: max_text bytes in <org_name> is read; one more is refused.
    for name, n, expectation in (
            ("text-at-cap.xml", limits["max_text"], ("read", 1)),
            ("text-over-cap.xml", limits["max_text"] + 1,
             ("refused", r"text of <org_name> longer than %d bytes" % limits["max_text"], QUICK))):
        put(name, re.sub(r"<org_name>[^<]*</org_name>", "<org_name>%s</org_name>" % ("o" * n), head, count=1) + tail,
            expectation)

    # Depth: <feedback><record> and then nested elements; max_depth elements in all is read,
    # one more is refused.
    cut = tail.index("    <auth_results>")
    for name, depth, expectation in (
            ("depth-at-cap.xml", limits["max_depth"], ("read", 1)),
            ("depth-over-cap.xml", limits["max_depth"] + 1,
             ("refused", r"elements nested deeper than %d" % limits["max_depth"], QUICK))):
        n = depth - 2
        put(name, head + tail[:cut] + "<x>" * n + "</x>" * n + "\n" + tail[cut:], expectation)

    # integer-overflow.xml is refused at its first field (begin -1): each of its values alone.
    for name, tag, value, reason in (
            ("count-2-64.xml", "count", "18446744073709551616", r"<count> '18446744073709551616' is not a count"),
            ("end-10-20.xml", "end", "99999999999999999999", r"<end> '99999999999999999999' is not a Unix time")):
        put(name, re.sub(r"<%s>[^<]*</%s>" % (tag, tag), "<%s>%s</%s>" % (tag, value, tag), head + tail, count=1),
            ("refused", reason, QUICK))

    # A zip of exactly max_zip_members reports: all read.
    with zipfile.ZipFile(os.path.join(folder, "zip-at-member-cap.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(limits["max_zip_members"]):
            z.writestr(zipfile.ZipInfo("report-%d.xml" % i, (1980, 1, 1, 0, 0, 0)),
                       head.replace("</report_id>", "-%d</report_id>" % i, 1) + tail)
    made.append(("zip-at-member-cap.zip", ("read", limits["max_zip_members"])))

    # One XML token of 500 MiB (an attribute value; a comment), gzip'd at zlib's fastest level
    # (2.2 MiB, a ratio near 230): expat holds a token whole, doubling its buffer, and took 22 s
    # and 1 GB before its memory was capped (16 MiB).
    for name, opening, closing in (("token-attribute.xml.gz", '<org_name a="', '"/>'),
                                   ("token-comment.xml.gz", "<!--", "-->")):
        gz = zlib.compressobj(1, zlib.DEFLATED, 31)
        parts = [gz.compress(head.replace("<org_name>", opening + "<org_name>", 1)
                             .split("<org_name>", 1)[0].encode())]
        block = b"x" * MIB
        for _ in range(500):
            parts.append(gz.compress(block))
        parts.append(gz.compress(closing.encode() + b"</report_metadata></feedback>"))
        parts.append(gz.flush())
        put(name, b"".join(parts), ("refused", r"XML parser needs more than 16 MiB", QUICK))

    # A TLS report of JSON "0,": 30 MiB of it (15 million values) took 9.6 s and 833 MB before
    # the parsed document's memory was capped (eight times the text and 1 MiB); 4 MiB here.
    with open(os.path.join(folder, "json-values.json"), "wb") as f:
        f.write(b'{"organization-name":"x","policies":[')
        chunk = b"0," * (MIB // 2)
        for _ in range(4):
            f.write(chunk)
        f.write(b'0]}')
    made.append(("json-values.json", ("refused", r"MiB once parsed", QUICK)))

    # 28 MiB of "From a" lines: an mbox of 4 million empty messages, each parsed and named (108 s
    # before the problems of one input were capped).
    # A mail of 400,000 empty MIME parts (2.8 MB): GMime built them all before the walk counted
    # any, 540 MB and 4 s.
    put("many-parts.eml", b"From: a@example.net\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\n\nx\n" * 400000 + b"--b--\n",
        ("refused", r"lines that may begin MIME parts", QUICK))
    # 4 million header fields (29 MB): 2.1 GB and 12 s in GMime.
    put("many-fields.eml", b"From: a@example.net\n" + b"X-A: x\n" * (4 * MIB) +
        b"MIME-Version: 1.0\n\nbody\n", ("refused", r"lines that may be header fields", QUICK))
    put("empty-messages.mbox", b"From a\n" * (4 * MIB),
        ("refused", r"more than 10000 problems: the rest of the mbox is not read", QUICK))
    return made


# --- expectations of the generator's files -----------------------------------------------------

def generated_expectations(limits):
    cap = r"(decompresses more than %d times its size|more than %s)" % (limits["max_ratio"], mib(limits["max_decompressed"]))
    doctype = ("refused", r"a DOCTYPE is not allowed", QUICK)
    return {
        "billion-laughs.xml": doctype,
        "quadratic-blowup.xml": doctype,
        "external-entity.xml": doctype,
        "external-dtd.xml": doctype,
        "deep.xml": ("refused", r"elements nested deeper than %d" % limits["max_depth"], QUICK),
        "gzip-bomb.xml.gz": ("refused", cap, QUICK),
        # The members before the cap are reports of their own, read; the archive is refused
        # at the member one over it.
        "zip-many-members.zip": ("refused", r"zip archive: more than %d members" % limits["max_zip_members"], QUICK,
                                 limits["max_zip_members"]),
        "zip-member-over-cap.zip": ("refused", cap, QUICK),
        "zip-size-lie.zip": ("refused", cap, QUICK),
        "truncated.xml.gz": ("refused", r"truncated", QUICK),
        "integer-overflow.xml": ("refused", r"(is not a Unix time|is not a count)", QUICK),
        # Our stated choice (source.hpp: "one member is read; bytes after it are ignored"):
        # read, the first member's report only, as Mail::DMARC does.
        "trailing-garbage.xml.gz": ("read", 1, "mail-dmarc"),
        "two-members.xml.gz": ("read", 1, "mail-dmarc"),
    }


# --- running ------------------------------------------------------------------------------------

def run_measured(cmd, folder, timeout):
    """(exit status, stdout, stderr, seconds, peak RSS in KiB) of cmd, killed after timeout.
    The peak RSS is GNU time's %M (the rusage of a child Python starts includes this
    interpreter's own RSS from before the exec); without /usr/bin/time, that upper bound."""
    out_path = os.path.join(folder, ".stdout")
    err_path = os.path.join(folder, ".stderr")
    rss_path = os.path.join(folder, ".rss")
    gnu_time = os.access("/usr/bin/time", os.X_OK)
    if gnu_time:
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_path] + cmd
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=folder, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    with open(out_path, "rb") as f:
        stdout = f.read().decode("utf-8", "replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace")
    rss = usage.ru_maxrss
    if gnu_time:
        with open(rss_path, encoding="utf-8") as f:
            # "Command exited with non-zero status 2" first, when it did.
            rss = int(f.read().split()[-1])
    return p.returncode, stdout, stderr, seconds, rss


def opened_files(cli, folder, name):
    """The paths `cli reports parse --json name` opens or looks at (strace), or None when
    strace cannot be used here."""
    if not shutil.which("strace"):
        return None
    log = os.path.join(folder, ".strace")
    p = subprocess.run(["strace", "-f", "-qq", "-o", log, "-e",
                        "trace=open,openat,openat2,creat,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,readlinkat",
                        cli, "reports", "parse", "--json", name],
                       cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not os.path.exists(log) or os.path.getsize(log) == 0 or p.returncode not in (0, 2):
        return None
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    os.unlink(log)
    return re.findall(r'"([^"]*)"', text)


def check(cli, folder, name, expectation, failures, report):
    rc, out, err, seconds, rss = run_measured([cli, "reports", "parse", "--json", name], folder, SLOW + 20)
    lines = [line for line in out.splitlines() if line.strip()]
    problems = []
    kind = expectation[0]
    if kind == "refused":
        pattern, bound = expectation[1], expectation[2]
        allowed = expectation[3] if len(expectation) > 3 else 0
        if rc != 2:
            problems.append("exit %d, expected 2" % rc)
        if not re.search(r"^dkim-appliance: %s\b.*%s" % (re.escape(name), pattern), err, re.M):
            problems.append("stderr does not name the file and /%s/: %r" % (pattern, err.strip()[:300]))
        if len(lines) > allowed:
            problems.append("%d reports printed, at most %d expected" % (len(lines), allowed))
    else:
        want, bound = expectation[1], QUICK
        if rc != 0 or len(lines) != want:
            problems.append("exit %d with %d reports, expected 0 with %d (stderr %r)" % (rc, len(lines), want, err.strip()[:300]))
    for secret in SECRETS:
        if secret in out or secret in err:
            problems.append("%s appears in the output" % secret)
    if seconds > bound:
        problems.append("took %.2f s, more than %.0f s" % (seconds, bound))
    if MAX_RSS_MIB is not None and rss > MAX_RSS_MIB * 1024:
        problems.append("peak RSS %d MiB, more than %d MiB" % (rss >> 10, MAX_RSS_MIB))
    reason = err.strip().splitlines()[-1] if err.strip() else "(read: %d reports)" % len(lines)
    report.append("  %-30s exit %d  %6.2f s  %4d MiB  %s" % (name, rc, seconds, rss >> 10, reason[:110]))
    for p in problems:
        failures.append("%s: %s" % (name, p))
    return lines


def check_terminal_text(cli, folder, failures, report):
    """`reports parse` without --json prints a report's names for a terminal (as root, often):
    an escape sequence in them (C0 ESC and BEL, C1 CSI as UTF-8) must not reach it. A TLS report
    (JSON may carry any control character), a failure report (a header may carry raw bytes) and
    an aggregate report (XML 1.0 allows C1 controls) each carry some."""
    escapes = "\u001b]0;owned\u0007\u001b[2J\u009b31m"
    with open(os.path.join(SOURCE, "tests", "data", "dmarc-reports", "smtp_tls", "rfc8460.json"),
              encoding="utf-8") as f:
        tls = json.load(f)
    tls["organization-name"] = "Company-X" + escapes
    tls["report-id"] = "id" + escapes
    files = {"escapes-tls.json": json.dumps(tls).encode()}
    files["escapes-failure.eml"] = (
        b"From: reporter\x1b[2J@example.net\r\nTo: ruf@example.com\r\nSubject: r\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; "
        b"boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: auth-failure\r\nAuth-Failure: dmarc\x1b]0;x\x07\r\n"
        b"Reported-Domain: example.com\xc2\x9b31m\r\nSource-IP: 192.0.2.1\r\n--b--\r\n")
    head, tail = small_report(folder)
    files["escapes-aggregate.xml"] = re.sub(
        r"<org_name>[^<]*</org_name>", "<org_name>Org\u009b2J\u0085x</org_name>", head + tail,
        count=1).encode()
    for name, data in files.items():
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        run = subprocess.run([cli, "reports", "parse", path], capture_output=True, timeout=60)
        shown = run.stdout + run.stderr
        bad = [c for c in (b"\x1b", b"\x07", b"\xc2\x9b", b"\xc2\x85") if c in shown]
        if run.returncode != 0 or not run.stdout:
            failures.append("%s: exit %d, stdout %r" % (name, run.returncode, run.stdout[:200]))
        elif bad:
            failures.append("%s: control characters reach the terminal: %r" % (name, shown[:300]))
        else:
            report.append("  %-30s no control character printed: %s" %
                          (name, run.stdout.decode(errors="replace").strip()[:80]))


def check_import_links(cli, folder, failures, report):
    """`reports import MAILDIR` runs as root over mail others delivered: a symbolic link in new/
    (to a file only root may read) is named and not followed, so nothing is read or sent to
    dkim-reportd (its socket here does not exist: reading the file would end in "unreachable",
    exit 1)."""
    secret = os.path.join(folder, "root-only.txt")
    with open(secret, "w", encoding="utf-8") as f:
        f.write("From: a@example.net\nSubject: XXE-SECRET\n\nXXE-SECRET\n")
    os.chmod(secret, 0o600)
    maildir = os.path.join(folder, "maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    os.symlink(secret, os.path.join(maildir, "new", "1700000000.1.host"))
    run = subprocess.run([cli, "reports", "import", "--reportd-socket",
                          os.path.join(folder, "no-reportd.sock"), maildir],
                         capture_output=True, timeout=60, text=True)
    if run.returncode != 2 or "a symbolic link, not followed" not in run.stderr:
        failures.append("import of a maildir with a symbolic link: exit %d, stderr %r" %
                        (run.returncode, run.stderr.strip()[:300]))
    else:
        report.append("  %-30s %s" % ("maildir-symlink", run.stderr.strip()[:100]))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cli", help="the dkim-appliance binary")
    p.add_argument("--keep", metavar="DIR", help="write the files into DIR and keep them")
    p.add_argument("--sanitized", action="store_true", help="the CLI is a sanitizer build: looser bounds")
    a = p.parse_args(argv)
    global QUICK, SLOW, MAX_RSS_MIB
    if a.sanitized:
        QUICK, SLOW, MAX_RSS_MIB = QUICK * 5, SLOW * 5, None
    cli = os.path.abspath(a.cli)
    if not os.access(cli, os.X_OK):
        print("hostile_reports: %s is not an executable: build the dkim-appliance target" % a.cli)
        return 1
    started = time.monotonic()
    limits = read_limits()
    folder = os.path.abspath(a.keep or tempfile.mkdtemp(prefix="dmarc-hostile-"))
    if a.keep:
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    failures, report = [], []
    try:
        t = time.monotonic()
        subprocess.run(["/usr/bin/python3", GENERATE, "--hostile", folder,
                        "--cap-mb", str(limits["max_decompressed"] >> 20),
                        "--bomb-mb", str((limits["max_decompressed"] >> 20) + 1),
                        "--zip-members", str(limits["max_zip_members"] + 1)],
                       check=True, stderr=subprocess.DEVNULL)
        expectations = generated_expectations(limits)
        with open(os.path.join(folder, "MANIFEST.tsv"), encoding="utf-8") as f:
            listed = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
        inputs = [n for n in listed if n not in ("xxe-secret.txt", "xxe-external.dtd")]
        unknown = sorted(set(inputs) - set(expectations))
        if unknown:
            failures.append("generate_reports.py makes files this test does not know: %s" % ", ".join(unknown))
        extra = make_extra(folder, limits)
        generating = time.monotonic() - t
        print("limits (model.hpp): " + ", ".join("%s %d" % kv for kv in sorted(limits.items())))

        read_by_ours = {}
        for name in inputs:
            if name in expectations:
                read_by_ours[name] = check(cli, folder, name, expectations[name], failures, report)
        for name, expectation in extra:
            check(cli, folder, name, expectation, failures, report)

        # The entity files: what they point at is never opened (strace), where strace works.
        for name, target in (("external-entity.xml", "xxe-secret.txt"), ("external-dtd.xml", "xxe-external.dtd")):
            paths = opened_files(cli, folder, name)
            if paths is None:
                report.append("  (strace not usable here: %s checked by its output only)" % name)
            elif any(os.path.basename(x) == target for x in paths):
                failures.append("%s: %s was opened" % (name, target))
            elif name not in paths:
                failures.append("%s: strace saw no open of the file itself: the check proves nothing" % name)
            else:
                report.append("  %-30s strace: %s never opened" % (name, target))

        # Read by our stated choice: the report must be the first member's, as Mail::DMARC
        # (which reads only the first member too) reads it.
        choice = [n for n, e in expectations.items() if e[0] == "read" and len(e) > 2 and e[2] == "mail-dmarc"]
        paths = [os.path.join(folder, n) for n in choice]
        theirs = oracles.mail_dmarc(paths, {})
        for name, path in zip(choice, paths):
            diffs = oracles.Diffs(20)
            if isinstance(theirs[path], tuple):
                failures.append("%s: Mail::DMARC could not read it: %s" % (name, theirs[path][1]))
            elif len(read_by_ours.get(name, [])) == 1:
                # generate_reports.py's default --max-dkim 2: Mail::DMARC's repeated first
                # result (tests/reports/README.md) applies.
                oracles.compare_mail_dmarc(name, json.loads(read_by_ours[name][0]), theirs[path], diffs,
                                           ("first-result-repeated",))
                if diffs.items:
                    failures.append("%s: ours and Mail::DMARC differ (above)" % name)
                else:
                    report.append("  %-30s the first member's report, as Mail::DMARC reads it" % name)
        check_terminal_text(cli, folder, failures, report)
        check_import_links(cli, folder, failures, report)
    finally:
        if not a.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n".join(report))
    print("generating %.1f s, in all %.1f s" % (generating, time.monotonic() - started))
    for f in failures:
        print("FAIL " + f)
    if failures:
        print("hostile_reports: %d failures" % len(failures))
        return 1
    print("hostile_reports: every hostile file handled as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
