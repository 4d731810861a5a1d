#!/usr/bin/python3
"""Our DMARC aggregate report parser against Debian's independent readers (issue 21).

  compare_with_oracles.py DKIM_APPLIANCE [--keep DIR] [--max-diffs N]

`DKIM_APPLIANCE reports parse --json` is compared field by field with Mail::DMARC
(mail_dmarc_parse.pl) and, where it can read the file, dmarc-cat (dmarc_cat_check.sh), on:

  samples     every aggregate report in tests/data/dmarc-reports/aggregate and invalid/;
              where an oracle refuses a file for a reason tests/reports/README.md documents
              (RFC 9990 namespace, upper-case DKIM results, ikea's <xs:schema> wrapper), ours
              must read it, and its output is compared with the oracle's reading of a copy
              with just that cause taken out, and with the facts in the file itself; files
              every reader must refuse (empty, malformed) must be refused by ours (exit 2);
  generated   seeded reports from generate_reports.py (bare xml, gzip, zip, report mails;
              IPv4 and IPv6; one big report; --max-dkim 1 --max-spf 1 where Mail::DMARC must
              agree exactly, and a set with several DKIM/SPF results a record), and copies of
              the bare ones made namespaced (RFC 9990, default and prefixed), with upper-case
              result keywords, and with IPv6 sources written out in full: ours on the copy must
              say what Mail::DMARC says of the original.

Compared: org_name, report_id, domain, begin, end, the policy fields both give, and per
record in document order source_ip (the oracle's text in canonical form, RFC 5952; ours must
already be canonical), count, header_from, disposition, each DKIM result (domain, selector,
result) and SPF result (domain, scope, result); dmarc-cat gives fewer fields and sorts its
records, so they are compared as a multiset. Only the quirks documented in
tests/reports/README.md are normalised, each where it is applied.

Prints each mismatch (file, field, ours, the oracle's) and a summary; exit 0 when all agree,
1 on any mismatch or when a reader does not behave as documented.
Standard library only: run with /usr/bin/python3. Mail::DMARC (libmail-dmarc-perl) and
dmarc-cat come from .ci/install-deps.sh.
"""

import argparse
import collections
import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
SAMPLES = os.path.join(SOURCE, "tests", "data", "dmarc-reports")
GENERATE = os.path.join(HERE, "generate_reports.py")
MAIL_DMARC = os.path.join(HERE, "mail_dmarc_parse.pl")
DMARC_CAT = os.path.join(HERE, "dmarc_cat_check.sh")
DMARC2_NS = "urn:ietf:params:xml:ns:dmarc-2.0"

# What each oracle does with each sample (tests/reports/README.md, "What each reader can and
# cannot read"). "read", None (not run: the reader cannot read that kind of file at all), or
# ("refused", what its error says). A sample not listed here must be read by both (dmarc-cat
# is not run on mails).
SAMPLE_EXPECT = {
    "aggregate/google.com-borschow.com-report.eml": {"dmarc-cat": None},  # dmarc-cat reads no mails
    "aggregate/rfc9990-sample.xml": {
        # No RFC 9990 namespace: its XPath /feedback/... finds nothing.
        "mail-dmarc": ("refused", 'Can\'t call method "findnodes" on an undefined value'),
    },
    "aggregate/ikea.com_example.de_1538690400_1538776800.xml": {
        # The unclosed <xs:schema> around <feedback>: not well-formed to libxml2 and Go.
        "mail-dmarc": ("refused", "Premature end of data in tag schema"),
        "dmarc-cat": ("refused", "unexpected EOF"),
    },
    "invalid/report_with_upper_cased_pass.xml": {
        # Auth_Results::DKIM croaks on "Pass".
        "mail-dmarc": ("refused", "invalid DKIM result"),
    },
    "invalid/empty.xml": {"mail-dmarc": ("refused", "Empty String"), "dmarc-cat": ("refused", "EOF"),
                          "ours": "refused"},
    "invalid/invalid_xml.xml": {"mail-dmarc": ("refused", "parser error"),
                                "dmarc-cat": ("refused", "XML syntax error"), "ours": "refused"},
}

# Generated sets: (name, generate_reports.py arguments, readers). Seeds fixed: the same files
# every run. Mail::DMARC reads all; dmarc-cat the first `cat` files of a set (it costs a
# process and ~0.15 s a file, and reads no mails).
GENERATED = [
    ("xml", ["--many", "40", "--compress", "none", "--max-dkim", "1", "--max-spf", "1", "--seed", "2101"], 8),
    ("gzip", ["--many", "30", "--compress", "gzip", "--max-dkim", "1", "--max-spf", "1", "--seed", "2102"], 5),
    ("zip", ["--many", "30", "--compress", "zip", "--max-dkim", "1", "--max-spf", "1", "--seed", "2103"], 5),
    ("eml", ["--many", "30", "--compress", "eml", "--max-dkim", "1", "--max-spf", "1", "--seed", "2104"], 0),
    ("multi", ["--many", "30", "--compress", "none", "--max-dkim", "3", "--max-spf", "2", "--seed", "2105"], 8),
    ("big", ["--records", "3000", "--compress", "none", "--max-dkim", "1", "--max-spf", "1", "--seed", "2106"], 1),
]
# Copies of the "xml" set, each changed in one way that must not change what ours reads:
# (name, transform, dmarc-cat files). Compared with Mail::DMARC on the original.
VARIANT_CAT = {"ns-default": 3, "ns-prefixed": 3, "upper-case": 0, "ipv6-full": 0}

MAX_DIFFS = 60


class Diffs:
    """Mismatches and surprises, printed as they are found."""

    def __init__(self, limit, silent=False):
        self.items = 0
        self.limit = limit
        self.silent = silent

    def _show(self, text):
        self.items += 1
        if self.silent:
            return
        if self.items <= self.limit:
            print(text, flush=True)
        elif self.items == self.limit + 1:
            print("... (more not shown: --max-diffs)", flush=True)

    def add(self, where, field, ours, oracle, oracle_name):
        self._show("MISMATCH %s: %s\n    ours:       %s\n    %-11s %s"
                   % (where, field, json.dumps(ours), oracle_name + ":", json.dumps(oracle)))

    def fail(self, where, message):
        self._show("FAIL %s: %s" % (where, message))


# --- running the readers ----------------------------------------------------------------------

def run(cmd, **kw):
    start = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), \
        time.monotonic() - start


def per_file(files, stdout, stderr, refused_line):
    """{file: report or ("refused", reason)} from a batch run that prints one JSON line per
    file it reads, in order, and names each file it cannot read on stderr (refused_line(file)
    is the regex of that line; group 1 the reason)."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    result = {}
    for f in files:
        m = re.search(refused_line(f), stderr, re.M)
        if m:
            result[f] = ("refused", m.group(1))
        elif lines:
            result[f] = lines.pop(0)
        else:
            result[f] = ("refused", "(no output and no error for this file)")
    if lines:
        raise RuntimeError("%d report lines more than files read" % len(lines))
    return result


def ours(cli, files, timings):
    rc, out, err, seconds = run([cli, "reports", "parse", "--json"] + files)
    timings["ours"] = timings.get("ours", 0) + seconds
    got = per_file(files, out, err, lambda f: r"^dkim-appliance: %s(?::| \()\s*(.*)$" % re.escape(f))
    refused = any(isinstance(v, tuple) for v in got.values())
    if rc != (2 if refused else 0):
        raise RuntimeError("ours exited %d (expected %d) on %d files:\n%s" % (rc, 2 if refused else 0, len(files), err))
    return got


def mail_dmarc(files, timings):
    # -q: without its warnings ("SPF domain is required but missing!"); "not read" stays.
    rc, out, err, seconds = run(["perl", MAIL_DMARC, "-q"] + files)
    timings["Mail::DMARC"] = timings.get("Mail::DMARC", 0) + seconds
    return per_file(files, out, err, lambda f: r"^%s: not read: (.*)$" % re.escape(f))


def dmarc_cat(files, timings):
    if not files:
        return {}
    rc, out, err, seconds = run(["bash", DMARC_CAT] + files)
    timings["dmarc-cat"] = timings.get("dmarc-cat", 0) + seconds
    return per_file(files, out, err, lambda f: r"^%s: not read: (.*)$" % re.escape(f))


# --- comparing --------------------------------------------------------------------------------

def canonical_ip(text):
    """RFC 5952 text of an address: lower case, the longest run of two or more zero fields as
    :: (Python's compressed form), and an IPv4-mapped address as ::ffff:a.b.c.d (RFC 5952
    section 5, which Python 3.11 does not do). White space around it is not part of it."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return "(not an IP address: %r)" % text
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return "::ffff:" + str(ip.ipv4_mapped)
    return ip.compressed


def expected_org_name(ours_report, oracle_org):
    """Ours fills an empty <org_name> from its <email>'s domain, lower-cased (aggregate.cpp,
    send_header: 'Some reporters leave <org_name> empty'). Not an oracle quirk: our own rule,
    applied only where the oracle read the org_name as empty."""
    if oracle_org == "" and "@" in ours_report.get("email", ""):
        return ours_report["email"].rsplit("@", 1)[1].lower()
    return oracle_org


def auth_entries(entries, fields):
    """Our DKIM/SPF results in mail_dmarc_parse.pl's shape: only `fields`, and an empty field
    left out (Mail::DMARC does not tell an empty element from an absent one, so the script
    leaves empty ones out; an empty SPF scope is not kept by Mail::DMARC either)."""
    return [{f: e[f] for f in fields if e.get(f, "") != ""} for e in entries]


def trimmed(value):
    """Ours trims white space around every text field (model.hpp: "text fields as the reporter
    wrote them (trimmed ...)"); Mail::DMARC keeps it (org_name "example.com " in
    invalid/report_with_upper_cased_pass.xml). Our documented rule, not an oracle quirk."""
    return value.strip() if isinstance(value, str) else value


def lower(value):
    return value.lower() if isinstance(value, str) else value


def compare_mail_dmarc(where, o, m, diffs, quirks=()):
    """Ours (o) against mail_dmarc_parse.pl (m), field by field."""
    name = "Mail::DMARC"
    m = json.loads(json.dumps(m), object_hook=lambda d: {k: trimmed(v) for k, v in d.items()})
    # Ours lower-cases names (policy domain, header_from, DKIM/SPF domain, DKIM selector:
    # aggregate.cpp), DNS names being case-insensitive (RFC 4343); Mail::DMARC keeps them as
    # written. Our documented rule, not an oracle quirk (it matters in the "edge" set only).
    m["domain"] = lower(m.get("domain"))
    m.setdefault("policy", {})
    if "domain" in m["policy"]:
        m["policy"]["domain"] = lower(m["policy"]["domain"])
    for r in m.get("records", []):
        r["header_from"] = lower(r.get("header_from"))
        for e in r.get("dkim", []) + r.get("spf", []):
            for f in ("domain", "selector"):
                if f in e:
                    e[f] = lower(e[f])
    for f in ("report_id", "domain", "begin", "end"):
        if o.get(f) != m.get(f):
            diffs.add(where, f, o.get(f), m.get(f), name)
    if o.get("org_name") != expected_org_name(o, m.get("org_name")):
        diffs.add(where, "org_name", o.get("org_name"), m.get("org_name"), name)
    op, mp = o.get("policy", {}), m.get("policy", {})
    for f in ("domain", "adkim", "aspf", "p", "sp", "pct"):
        ov = op.get(f)
        if ov in ("", None):
            ov = None
        mv = mp.get(f)
        if ov is not None and mv is None and str(ov) == "0":
            # Quirk: Mail::DMARC leaves out policy fields that are "0" (pct=0 is lost:
            # `... or next`).
            continue
        if ov != mv:
            diffs.add(where, "policy." + f, ov, mv, name)
    orec, mrec = o.get("records", []), m.get("records", [])
    if len(orec) != len(mrec):
        diffs.add(where, "number of records", len(orec), len(mrec), name)
    for i, (r, s) in enumerate(zip(orec, mrec)):
        at = "records[%d]" % i
        if r["source_ip"] != canonical_ip(s["source_ip"]):
            diffs.add(where, at + ".source_ip", r["source_ip"], s["source_ip"], name)
        for f in ("count", "header_from"):
            if r.get(f) != s.get(f):
                diffs.add(where, at + "." + f, r.get(f), s.get(f), name)
        disposition = r.get("disposition")
        if disposition not in ("none", "quarantine", "reject"):
            # Quirk: any disposition but (lower-case) none/quarantine/reject, RFC 9990's
            # "pass" among them, becomes "none" in Mail::DMARC.
            disposition = "none"
        if "disposition-case" in quirks and s.get("disposition") == "none":
            # Quirk: the same, for a disposition written in another case ("Quarantine"),
            # which ours reads lower-cased (only where the file is known to have one).
            disposition = "none"
        if disposition != s.get("disposition"):
            diffs.add(where, at + ".disposition", r.get("disposition"), s.get("disposition"), name)
        for method, fields in (("dkim", ("domain", "selector", "result")), ("spf", ("domain", "scope", "result"))):
            want = auth_entries(r.get(method, []), fields)
            if "first-result-repeated" in quirks and want:
                # Quirk: with several <dkim> (<spf>) results in a record, Mail::DMARC gives as
                # many entries, each a copy of the first (do_node_record_auth reads
                # ./auth_results/dkim/domain from the record: a NodeList's first node).
                want = [want[0]] * len(want)
            if want != s.get(method, []):
                diffs.add(where, "%s.%s" % (at, method), want, s.get(method), name)


def compare_dmarc_cat(where, o, c, diffs):
    """Ours (o) against dmarc_cat_check.sh (c): its subset, records as a multiset."""
    name = "dmarc-cat"
    for f in ("email", "domain", "begin", "end"):
        if o.get(f) != c.get(f):
            diffs.add(where, f, o.get(f), c.get(f), name)
    if o.get("org_name") != expected_org_name(o, c.get("org_name")):
        diffs.add(where, "org_name", o.get("org_name"), c.get("org_name"), name)
    for f in ("domain", "p", "adkim", "aspf"):
        ov = o["policy"].get(f) or None  # dmarc-cat shows no empty policy field
        if ov != c["policy"].get(f):
            diffs.add(where, "policy." + f, ov, c["policy"].get(f), name)

    def last(entries, field):
        # Quirk: dmarc-cat keeps one DKIM and one SPF result a record, the last one (its Go
        # struct has one field for each, each <dkim> overwriting it).
        return entries[-1].get(field, "") if entries else ""

    def row_ours(r):
        dkim_domain = last(r["dkim"], "domain")
        # dmarc-cat's "RFrom": the DKIM domain, or the SPF one where that is empty.
        auth = dkim_domain or last(r["spf"], "domain")
        return (r["source_ip"], r["count"], r["header_from"], auth,
                last(r["dkim"], "result"), last(r["spf"], "result"))

    def row_cat(r):
        return (canonical_ip(r["source_ip"]), r["count"], r["header_from"], r["auth_domain"],
                r["dkim"][0]["result"] if r["dkim"] else "", r["spf"][0]["result"] if r["spf"] else "")

    # Records as a multiset: dmarc-cat sorts its table (by IP here), losing the order.
    a = sorted(row_ours(r) for r in o["records"])
    b = sorted(row_cat(r) for r in c["records"])
    if a != b:
        only_a = [x for x in a if x not in b]
        only_b = [x for x in b if x not in a]
        diffs.add(where, "records (ip, count, header_from, auth domain, dkim, spf; as a multiset; "
                  "%d vs %d; first rows only in each)" % (len(a), len(b)), only_a[:5], only_b[:5], name)


# --- what a file itself says --------------------------------------------------------------------

def facts(path):
    """A trusted sample's fields by ElementTree, matching local names (no DTD in these files)."""
    root = ET.parse(path).getroot()

    def local(tag):
        return tag.rsplit("}", 1)[-1]

    def find(node, *names):
        for n in names:
            node = next((c for c in node if local(c.tag) == n), None)
            if node is None:
                return None
        return node

    def text(node, *names):
        n = find(node, *names)
        return (n.text or "").strip() if n is not None else ""

    records = [c for c in root if local(c.tag) == "record"]
    return {
        "namespace": root.tag[1:].split("}")[0] if root.tag.startswith("{") else "",
        "version": text(root, "version"),
        "email": text(root, "report_metadata", "email"),
        "org_name": text(root, "report_metadata", "org_name"),
        "generator": text(root, "report_metadata", "generator"),
        "np": text(root, "policy_published", "np"),
        "testing": text(root, "policy_published", "testing"),
        "discovery_method": text(root, "policy_published", "discovery_method"),
        "dispositions": [text(r, "row", "policy_evaluated", "disposition") for r in records],
        "envelope_from": [text(r, "identifiers", "envelope_from") for r in records],
        "dkim_results": [[text(d, "result") for d in find(r, "auth_results") or [] if local(d.tag) == "dkim"]
                         for r in records],
        "spf_results": [[text(d, "result") for d in find(r, "auth_results") or [] if local(d.tag) == "spf"]
                        for r in records],
    }


# --- transforms (each a copy with one cause taken out or put in) ----------------------------

def without_namespace(xml):
    return xml.replace(' xmlns="%s"' % DMARC2_NS, "")


def lower_results(xml):
    return re.sub(r"<result>([^<]*)</result>", lambda m: "<result>%s</result>" % m.group(1).lower(), xml)


def without_schema_wrapper(xml):
    return re.sub(r"<xs:schema\b[^>]*>", "", xml, count=1)


def ns_default(xml):
    return xml.replace("<feedback>", '<feedback xmlns="%s">' % DMARC2_NS, 1)


def ns_prefixed(xml):
    xml = re.sub(r"<(/?)([A-Za-z_][\w.-]*)", r"<\1dmarc:\2", xml)
    return xml.replace("<dmarc:feedback>", '<dmarc:feedback xmlns:dmarc="%s">' % DMARC2_NS, 1)


def upper_case(xml):
    n = [0]

    def up(m):
        n[0] += 1
        value = m.group(2).upper() if n[0] % 2 else m.group(2).capitalize()
        return "<%s>%s</%s>" % (m.group(1), value, m.group(1))
    return re.sub(r"<(result|disposition)>([^<]*)</\1>", up, xml)


def ipv6_full(xml):
    def full(m):
        ip = ipaddress.ip_address(m.group(1))
        return "<source_ip>%s</source_ip>" % (ip.exploded.upper() if ip.version == 6 else m.group(1))
    return re.sub(r"<source_ip>([^<]*)</source_ip>", full, xml)


VARIANTS = {"ns-default": ns_default, "ns-prefixed": ns_prefixed, "upper-case": upper_case, "ipv6-full": ipv6_full}


def write_copy(src, dst, transform, must_change=True):
    """Writes transform(src) to dst; whether it changed anything."""
    with open(src, encoding="utf-8") as f:
        xml = f.read()
    changed = transform(xml)
    if changed == xml and must_change:
        raise RuntimeError("%s: the transform %s changed nothing" % (src, transform.__name__))
    with open(dst, "w", encoding="utf-8") as f:
        f.write(changed)
    return changed != xml


# --- the checks --------------------------------------------------------------------------------

def check_samples(cli, tmp, diffs, stats, timings):
    files = sorted(os.path.join(d, f) for d in ("aggregate", "invalid")
                   for f in os.listdir(os.path.join(SAMPLES, d)))
    paths = [os.path.join(SAMPLES, f) for f in files]
    o = ours(cli, paths, timings)
    m = mail_dmarc(paths, timings)
    cat_paths = [os.path.join(SAMPLES, f) for f in files
                 if SAMPLE_EXPECT.get(f, {}).get("dmarc-cat", "read") is not None]
    c = dmarc_cat(cat_paths, timings)
    oracles = {"mail-dmarc": m, "dmarc-cat": c}
    derived = []  # (sample, oracle, copy's path): read by the oracle after one cause is taken out

    for f, path in zip(files, paths):
        expect = SAMPLE_EXPECT.get(f, {})
        mine = o[path]
        if expect.get("ours") == "refused":
            if not isinstance(mine, tuple):
                diffs.fail(f, "ours read a file every reader must refuse")
            for name, results in oracles.items():
                want = expect.get(name, "read")
                if want is not None and not (isinstance(results[path], tuple) and want[1] in results[path][1]):
                    diffs.fail(f, "%s: expected refused (%s), got %s" % (name, want[1], str(results[path])[:200]))
            stats["samples refused by all"] += 1
            continue
        if isinstance(mine, tuple):
            diffs.fail(f, "ours could not read it: %s" % mine[1])
            continue
        for name, results in oracles.items():
            want = expect.get(name, "read")
            if want is None:
                continue
            got = results[path]
            if want == "read":
                if isinstance(got, tuple):
                    diffs.fail(f, "%s could not read it (%s): document it in tests/reports/README.md "
                               "and SAMPLE_EXPECT, or find out why" % (name, got[1]))
                    continue
                if name == "mail-dmarc":
                    compare_mail_dmarc(f, mine, got, diffs)
                else:
                    compare_dmarc_cat(f, mine, got, diffs)
                stats["sample comparisons (%s)" % name] += 1
                stats["sample records compared (%s)" % name] += len(mine["records"])
                continue
            if not isinstance(got, tuple) or want[1] not in got[1]:
                diffs.fail(f, "%s: expected refused (%s), got %s" % (name, want[1], str(got)[:200]))
                continue
            # Refused for its documented reason: ours reads the file; the oracle reads a copy
            # with that one cause taken out.
            transform = {"aggregate/rfc9990-sample.xml": without_namespace,
                         "invalid/report_with_upper_cased_pass.xml": lower_results,
                         "aggregate/ikea.com_example.de_1538690400_1538776800.xml": without_schema_wrapper}[f]
            copy = os.path.join(tmp, "samples", name + "-" + os.path.basename(f))
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            write_copy(path, copy, transform)
            derived.append((f, name, copy))

    for f, name, copy in derived:
        got = (mail_dmarc if name == "mail-dmarc" else dmarc_cat)([copy], timings)[copy]
        where = "%s (%s on a copy without the cause)" % (f, name)
        if isinstance(got, tuple):
            diffs.fail(where, "the oracle still refuses the copy: %s" % got[1])
            continue
        mine = o[os.path.join(SAMPLES, f)]
        if name == "mail-dmarc":
            compare_mail_dmarc(where, mine, got, diffs)
        else:
            compare_dmarc_cat(where, mine, got, diffs)
        stats["samples the oracle refuses, compared on a copy"] += 1

    # The facts in the files themselves, for what the refusing oracle could not confirm.
    rfc9990 = o[os.path.join(SAMPLES, "aggregate/rfc9990-sample.xml")]
    fx = facts(os.path.join(SAMPLES, "aggregate/rfc9990-sample.xml"))
    if fx["namespace"] != DMARC2_NS:
        diffs.fail("aggregate/rfc9990-sample.xml", "no longer namespaced: %r" % fx["namespace"])
    for field, value in (("version", rfc9990["version"]), ("generator", rfc9990["generator"]),
                         ("np", rfc9990["policy"]["np"]), ("testing", rfc9990["policy"]["testing"]),
                         ("discovery_method", rfc9990["policy"]["discovery_method"])):
        if value != fx[field]:
            diffs.add("aggregate/rfc9990-sample.xml", field, value, fx[field], "the file")
    # RFC 9990's disposition "pass" (Mail::DMARC says "none"): ours as written.
    if [r["disposition"] for r in rfc9990["records"]] != fx["dispositions"]:
        diffs.add("aggregate/rfc9990-sample.xml", "dispositions",
                  [r["disposition"] for r in rfc9990["records"]], fx["dispositions"], "the file")
    if [r["envelope_from"] for r in rfc9990["records"]] != fx["envelope_from"]:
        diffs.add("aggregate/rfc9990-sample.xml", "envelope_from",
                  [r["envelope_from"] for r in rfc9990["records"]], fx["envelope_from"], "the file")
    upper = o[os.path.join(SAMPLES, "invalid/report_with_upper_cased_pass.xml")]
    fx = facts(os.path.join(SAMPLES, "invalid/report_with_upper_cased_pass.xml"))
    if not any(v != v.lower() for rs in fx["dkim_results"] for v in rs):
        diffs.fail("invalid/report_with_upper_cased_pass.xml", "has no upper-case DKIM result any more")
    for key, method in (("dkim_results", "dkim"), ("spf_results", "spf")):
        want = [[v.lower() for v in rs] for rs in fx[key]]
        got = [[e["result"] for e in r[method]] for r in upper["records"]]
        if got != want:
            diffs.add("invalid/report_with_upper_cased_pass.xml", method + " results (lower-cased)", got, want, "the file")
    for f in files:
        mine = o[os.path.join(SAMPLES, f)]
        if isinstance(mine, tuple) or not f.endswith(".xml"):
            continue
        try:
            fx = facts(os.path.join(SAMPLES, f))
        except ET.ParseError:
            continue  # ikea's: not well-formed (its oracles' copy covers it)
        if fx["org_name"] == "" and mine["org_name"] != fx["email"].rsplit("@", 1)[-1].lower():
            diffs.add(f, "org_name (empty in the file: its email's domain)", mine["org_name"], fx["email"], "the file")
    stats["sample files"] = len(files)


def generate(tmp, timings):
    """{set name: [files]} of the generated sets, and the variant copies."""
    sets = {}
    start = time.monotonic()
    for name in [g[0] for g in GENERATED] + list(VARIANTS):
        shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)  # a --keep folder used before
    for name, args, _ in GENERATED:
        out = os.path.join(tmp, name)
        if args[0] == "--records":
            out += ".xml"
        subprocess.run(["/usr/bin/python3", GENERATE, "--out", out] + args, check=True, stderr=subprocess.DEVNULL)
        sets[name] = sorted(os.path.join(out, f) for f in os.listdir(out)) if os.path.isdir(out) else [out]
    for name, transform in VARIANTS.items():
        folder = os.path.join(tmp, name)
        os.makedirs(folder)
        sets[name] = []
        changed = 0
        for src in sets["xml"]:
            dst = os.path.join(folder, os.path.basename(src))
            # A report without IPv6 sources is the same in ipv6-full.
            changed += write_copy(src, dst, transform, must_change=name != "ipv6-full")
            sets[name].append(dst)
        if changed < len(sets["xml"]) // 2:
            raise RuntimeError("the transform %s changed only %d files" % (name, changed))
    timings["generating"] = time.monotonic() - start
    return sets


def check_generated(cli, tmp, diffs, stats, timings):
    sets = generate(tmp, timings)
    every = [f for files in sets.values() for f in files]
    o = ours(cli, every, timings)
    originals = [f for name, _, _ in GENERATED for f in sets[name]]
    m = mail_dmarc(originals, timings)
    cat_files = [f for name, _, n in GENERATED for f in sets[name][:n]]
    cat_files += [f for name, n in VARIANT_CAT.items() for f in sets[name][:n]]
    c = dmarc_cat(cat_files, timings)
    ipv6 = 0
    for name, files in sets.items():
        original = sets["xml"] if name in VARIANTS else files
        for f, src in zip(files, original):
            where = os.path.relpath(f, tmp)
            mine = o[f]
            if isinstance(mine, tuple):
                diffs.fail(where, "ours could not read it: %s" % mine[1])
                continue
            theirs = m[src]
            if isinstance(theirs, tuple):
                diffs.fail(os.path.relpath(src, tmp), "Mail::DMARC could not read it: %s" % theirs[1])
                continue
            quirks = ("first-result-repeated",) if name == "multi" else ()
            compare_mail_dmarc(where + ("" if src == f else " (Mail::DMARC on the original)"), mine, theirs, diffs, quirks)
            stats["generated files compared with Mail::DMARC"] += 1
            stats["generated records compared with Mail::DMARC"] += len(mine["records"])
            ipv6 += sum(1 for r in mine["records"] if ":" in r["source_ip"])
            if f in c:
                if isinstance(c[f], tuple):
                    diffs.fail(where, "dmarc-cat could not read it: %s" % c[f][1])
                    continue
                compare_dmarc_cat(where, mine, c[f], diffs)
                stats["generated files compared with dmarc-cat"] += 1
                stats["generated records compared with dmarc-cat"] += len(mine["records"])
        stats["generated files: " + name] = len(files)
    # A report of several records, each with DKIM and SPF results, that agreed with both.
    probe = next(f for f in sets["xml"][:dict((g[0], g[2]) for g in GENERATED)["xml"]]
                 if not isinstance(o[f], tuple) and len(o[f]["records"]) > 2 and o[f]["policy"]["sp"]
                 and all(r["dkim"] and r["spf"] for r in o[f]["records"][:1])
                 and len({r["source_ip"] for r in o[f]["records"]}) == len(o[f]["records"]))
    check_comparators(o[probe], m[probe], c[probe], diffs)
    check_edges(cli, tmp, probe, diffs, stats, timings)
    multi = sum(1 for f in sets["multi"] for r in o[f]["records"] if len(r["dkim"]) > 1 or len(r["spf"]) > 1)
    stats["records with several DKIM/SPF results (multi)"] = multi
    stats["IPv6 records compared"] = ipv6
    if multi == 0 or ipv6 == 0:
        diffs.fail("generated", "the sets no longer cover several results a record / IPv6")


def first(tag, text):
    """A transform: the first <tag>'s text replaced by `text`, or the element removed (None)."""
    def change(xml):
        replacement = "" if text is None else "<%s>%s</%s>" % (tag, text, tag)
        return re.sub(r"<%s>[^<]*</%s>" % (tag, tag), lambda m: replacement, xml, count=1)
    change.__name__ = "first_%s" % tag
    return change


# Hand-made edges, each a copy of one generated report changed in one place (the first
# record's element). "agree": ours and Mail::DMARC on the copy, compared as everywhere;
# ("refused", regex): ours refuses it by its own stated rules (Mail::DMARC reads it), with a
# reason matching regex; ("known", text): a known difference, kept visible: the test fails
# when it changes, so that this list and the report to the parser's owners are updated.
EDGES = [
    ("entities-cdata", first("org_name", "AT&amp;T &#x263A; <![CDATA[x<y]]>"), "agree"),
    ("comment-in-text", first("org_name", "ab<!-- c -->cd"), "agree"),
    ("utf8", first("org_name", "Ma\u00efl \u65e5\u672c"), "agree"),
    ("latin1", lambda x: first("org_name", "Caf\u00e9")(x.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')), "agree"),
    ("bom", lambda x: "\ufeff" + x, "agree"),
    ("ipv4-mapped", first("source_ip", "::ffff:192.0.2.1"), "agree"),
    ("ipv6-zero-runs", first("source_ip", "2001:DB8:0:0:1:0:0:1"), "agree"),
    ("ipv6-one-zero", first("source_ip", "2001:db8:0:1:1:1:1:1"), "agree"),
    ("ip-white-space", first("source_ip", " 192.0.2.7\n "), "agree"),
    ("pct-white-space", first("pct", " 50 "), "agree"),
    ("report-id-white-space", first("report_id", "\n   abc  \n"), "agree"),
    ("header-from-case", first("header_from", "Example.COM"), "agree"),
    ("policy-domain-case", first("domain", "EXAMPLE.com"), "agree"),
    ("selector-case", first("selector", "S2024Upper"), "agree"),
    ("scope-case", first("scope", "MFROM"), "agree"),
    ("p-case", first("p", "Reject"), "agree"),
    ("disposition-case", first("disposition", "Quarantine"), ("agree", ("disposition-case",))),
    ("disposition-absent", first("disposition", None), "agree"),  # quirk: becomes none
    ("pct-0", first("pct", "0"), "agree"),  # quirk: pct=0 left out
    ("sp-absent", first("sp", None), "agree"),
    ("header-from-absent", first("header_from", None), "agree"),
    ("begin-after-end", lambda x: first("end", "1000000000")(first("begin", "2000000000")(x)),
     ("refused", r"date_range begins after it ends")),
    ("ipv4-leading-zero", first("source_ip", "192.0.2.01"), ("refused", r"<source_ip> '192\.0\.2\.01' is not an IP address")),
    ("count-plus", first("count", "+5"), ("refused", r"<count> '\+5' is not a count")),
    ("count-empty", first("count", ""), ("refused", r"<count> '' is not a count")),
    ("no-org-no-email", lambda x: first("email", "")(first("org_name", "")(x)),
     ("refused", r"<org_name> is missing")),
    # The three below were known differences until the parser was fixed to refuse them (as the
    # schema's required <count> and <result> say): Mail::DMARC reads the first two (null count,
    # the first of two counts) and refuses the third.
    ("count-absent", first("count", None), ("refused", r"record 1: <count> is missing")),
    ("count-twice", lambda x: x.replace("<count>", "<count>7</count><count>", 1),
     ("refused", r"more than one <count>")),
    ("dkim-result-absent", lambda x: re.sub(r"(<dkim>\s*<domain>[^<]*</domain>\s*<selector>[^<]*</selector>\s*)"
                                            r"<result>[^<]*</result>", r"\1", x, count=1),
     ("refused", r"without its <result>")),
]


def check_edges(cli, tmp, base, diffs, stats, timings):
    folder = os.path.join(tmp, "edges")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    with open(base, encoding="utf-8") as f:
        xml = f.read()
    files = []
    for name, transform, _ in EDGES:
        changed = transform(xml)
        if changed == xml:
            raise RuntimeError("edge %s: the transform changed nothing" % name)
        path = os.path.join(folder, name + ".xml")
        with open(path, "wb") as f:
            f.write(changed.encode("latin-1" if name == "latin1" else "utf-8"))
        files.append(path)
    o = ours(cli, files, timings)
    m = mail_dmarc(files, timings)
    for (name, _, expect), path in zip(EDGES, files):
        where = "edges/%s.xml" % name
        mine, theirs = o[path], m[path]
        if expect == "agree" or expect[0] == "agree":
            if isinstance(mine, tuple) or isinstance(theirs, tuple):
                diffs.fail(where, "expected both to read it; ours: %s; Mail::DMARC: %s"
                           % (str(mine)[:150], str(theirs)[:150]))
                continue
            compare_mail_dmarc(where, mine, theirs, diffs, () if expect == "agree" else expect[1])
            stats["edge cases compared with Mail::DMARC"] += 1
        elif expect[0] == "refused":
            if not isinstance(mine, tuple) or not re.search(expect[1], mine[1]):
                diffs.fail(where, "expected ours to refuse it (%s), got %s" % (expect[1], str(mine)[:200]))
            stats["edge cases ours refuses by its rules"] += 1
        else:
            probe = Diffs(0, silent=True)
            if isinstance(mine, tuple) or isinstance(theirs, tuple):
                probe.items = isinstance(mine, tuple) != isinstance(theirs, tuple)  # one reads it
            else:
                compare_mail_dmarc(where, mine, theirs, probe)
            if probe.items == 0:
                diffs.fail(where, "the known difference is gone (%s): update EDGES and the report" % expect[1])
            else:
                print("KNOWN %s: %s" % (where, expect[1]))
            stats["edge cases with a known difference"] += 1


def check_comparators(o, m, c, diffs):
    """The comparisons are not vacuous: each field changed in ours (a copy of a report that
    agreed) must be found by the comparison with each oracle that gives it."""
    def mutations():
        yield "org_name", lambda r: r.update(org_name=r["org_name"] + "x")
        yield "report_id", lambda r: r.update(report_id=r["report_id"] + "x")
        yield "domain", lambda r: r.update(domain="x" + r["domain"])
        yield "begin", lambda r: r.update(begin=r["begin"] + 1)
        yield "end", lambda r: r.update(end=r["end"] - 1)
        yield "email", lambda r: r.update(email="x" + r["email"])
        yield "policy.p", lambda r: r["policy"].update(p="none" if r["policy"]["p"] != "none" else "reject")
        yield "policy.sp", lambda r: r["policy"].update(sp="none" if r["policy"]["sp"] != "none" else "reject")
        yield "policy.pct", lambda r: r["policy"].update(pct=(r["policy"]["pct"] or 0) + 1)
        yield "records order", lambda r: r["records"].reverse()
        yield "a record dropped", lambda r: r["records"].pop()
        rec = lambda f: (lambda r: f(r["records"][0]))  # noqa: E731
        yield "source_ip", rec(lambda x: x.update(source_ip="192.0.2.254" if x["source_ip"] != "192.0.2.254" else "192.0.2.253"))
        yield "count", rec(lambda x: x.update(count=x["count"] + 1))
        yield "header_from", rec(lambda x: x.update(header_from="x" + x["header_from"]))
        yield "disposition", rec(lambda x: x.update(disposition="reject" if x["disposition"] != "reject" else "none"))
        yield "dkim.domain", rec(lambda x: x["dkim"][0].update(domain="x" + x["dkim"][0]["domain"]))
        yield "dkim.selector", rec(lambda x: x["dkim"][0].update(selector="x" + x["dkim"][0]["selector"]))
        yield "dkim.result", rec(lambda x: x["dkim"][0].update(result="policy"))
        yield "dkim dropped", rec(lambda x: x["dkim"].pop())
        yield "spf.domain", rec(lambda x: x["spf"][0].update(domain="x" + x["spf"][0]["domain"]))
        yield "spf.scope", rec(lambda x: x["spf"][0].update(scope="helo"))
        yield "spf.result", rec(lambda x: x["spf"][0].update(result="hardfail"))

    # Which oracle must see which change: dmarc-cat gives no report_id, sp, pct, record
    # order, disposition, selector, scope, and its auth domain is the DKIM one when present.
    not_in_cat = {"report_id", "policy.sp", "policy.pct", "records order", "disposition",
                  "dkim.selector", "spf.domain", "spf.scope"}
    not_in_md = {"email"}
    for field, change in mutations():
        changed = copy.deepcopy(o)
        change(changed)
        for name, theirs, skip, compare in (("Mail::DMARC", m, not_in_md, compare_mail_dmarc),
                                            ("dmarc-cat", c, not_in_cat, compare_dmarc_cat)):
            if field in skip:
                continue
            probe = Diffs(0, silent=True)
            compare(field, changed, theirs, probe)
            if probe.items == 0:
                diffs.fail("self-check", "a changed %s is not found by the comparison with %s" % (field, name))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cli", help="the dkim-appliance binary")
    p.add_argument("--keep", metavar="DIR", help="write the generated files into DIR and keep them")
    p.add_argument("--max-diffs", type=int, default=MAX_DIFFS, help="mismatches printed (default %d)" % MAX_DIFFS)
    a = p.parse_args(argv)
    if not os.access(a.cli, os.X_OK):
        print("compare_with_oracles: %s is not an executable: build the dkim-appliance target" % a.cli)
        return 1
    missing = [what for what, ok in (
        ("Mail::DMARC (libmail-dmarc-perl)", subprocess.run(["perl", "-MMail::DMARC::Report::Receive", "-e1"],
                                                            stderr=subprocess.DEVNULL).returncode == 0),
        ("dmarc-cat", shutil.which("dmarc-cat") is not None)) if not ok]
    if missing:
        print("compare_with_oracles: missing %s: run .ci/install-deps.sh" % ", ".join(missing))
        return 1
    started = time.monotonic()
    tmp = a.keep or tempfile.mkdtemp(prefix="dmarc-oracles-")
    os.makedirs(tmp, exist_ok=True)
    diffs = Diffs(a.max_diffs)
    stats = collections.Counter()
    timings = {}
    try:
        check_samples(a.cli, tmp, diffs, stats, timings)
        check_generated(a.cli, tmp, diffs, stats, timings)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        diffs.fail("run", str(e))
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for k, v in stats.items():
        print("  %-52s %d" % (k, v))
    print("  time: " + ", ".join("%s %.1f s" % kv for kv in timings.items())
          + ", in all %.1f s" % (time.monotonic() - started))
    if diffs.items:
        print("compare_with_oracles: %d mismatches" % diffs.items)
        return 1
    print("compare_with_oracles: ours agrees with Mail::DMARC and dmarc-cat")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
