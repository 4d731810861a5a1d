#!/usr/bin/python3
"""Synthetic DMARC aggregate reports (RFC 7489 appendix C), deterministic for a given seed.

  generate_reports.py --records N --out FILE      one report of N records
  generate_reports.py --many N --out DIR          N small reports in DIR
  generate_reports.py --hostile DIR               adversarial files for the parser's limits

The same arguments always write the same bytes (random.Random(seed); gzip and zip entries
carry fixed times). A summary goes to stderr: reports, records, bytes written.
Standard library only: run with /usr/bin/python3.
"""

import argparse
import email.message
import email.policy
import email.utils
import gzip
import io
import ipaddress
import os
import random
import re
import struct
import sys
import zipfile
import zlib
from datetime import datetime, timezone
from xml.sax.saxutils import escape

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
MIB = 1024 * 1024

HOSTILE_HELP = """\
--hostile DIR writes these files, and MANIFEST.tsv (file, attack, what the parser must do):
  billion-laughs.xml        nested internal entities (10 levels of 10): 10^10 "lol"s if
                            expanded. Must be refused (no DTD/entities), in bounded memory.
  quadratic-blowup.xml      one 50,000-character internal entity referenced 50,000 times
                            (2.5 GB if expanded), the attack that slips past depth-only limits.
  external-entity.xml       <!ENTITY xxe SYSTEM "xxe-secret.txt"> used in org_name; the
                            secret file is written beside it. XXE-SECRET must never appear in
                            any output: refuse, or leave the entity unexpanded.
  external-dtd.xml          <!DOCTYPE feedback SYSTEM "xxe-external.dtd">, the DTD (beside it)
                            defining the entity used in org_name. Must not be loaded.
  deep.xml                  --depth nested elements (default 100,000) inside a record.
                            Must be refused by a depth limit, not by running out of stack.
  gzip-bomb.xml.gz          a valid report padded with --bomb-mb MiB (default 1024) of
                            whitespace between elements: about 1 MB compressed. Must stop at
                            the decompressed-size cap.
  zip-many-members.zip      --zip-members members (default 10,000), each a small report
                            padded to --zip-member-kb KiB (default 100): about 1 GB in all.
                            Must stop at a member-count or total-size cap.
  zip-member-over-cap.zip   one report padded to --cap-mb + 1 MiB (default 65 MiB), its
                            true size in the headers. Must be refused by the cap.
  zip-size-lie.zip          as zip-member-over-cap.zip, but both headers claim 1,000 bytes
                            uncompressed: the cap must count inflated bytes, not trust the
                            header.
  truncated.xml.gz          the first half of a gzip'd report. Must be refused (unexpected
                            end of data), never half a report.
  trailing-garbage.xml.gz   a whole gzip'd report then 64 bytes that are not gzip. Whether
                            to accept is the parser's choice: state it and test it (Mail::DMARC
                            ignores them).
  two-members.xml.gz        two gzip members, each a whole report (RFC 1952 allows several
                            members; concatenated they are not one XML document).
  integer-overflow.xml      count 18446744073709551616 (2^64), begin -1, end 99999999999999999999.
                            Must be refused or rejected field by field, never wrapped.
"""


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="generate_reports.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__,
        epilog=HOSTILE_HELP + """
Synthetic reports: each record has one source IP from --sources, a count, a header_from
from --domains, 0..--max-dkim DKIM results (selectors from --selectors) and 1..--max-spf SPF
results; policy_evaluated and the disposition follow from the results and the policy (relaxed
alignment). Results are lower case and valid. Mail::DMARC repeats the first DKIM/SPF result
of a record for every further one (see mail_dmarc_parse.pl): give --max-dkim 1 --max-spf 1
for files on which its output must equal ours exactly.

--compress: none (FILE.xml), gzip (.xml.gz), zip (.zip, one member), eml (a report mail,
RFC 7489 section 7.2.1.1: Subject "Report Domain: ... Submitter: ... Report-ID: <...>",
the report attached as application/gzip, as the big providers send it).
With --many, files are named RECEIVER!POLICY-DOMAIN!BEGIN!END!NNNNNN.xml[.gz|.zip|.eml].

Examples:
  generate_reports.py --records 80000 --out big.xml           # about 50 MB
  generate_reports.py --many 10000 --compress gzip --out many/
  generate_reports.py --hostile hostile/ --bomb-mb 256
""")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--records", type=int, metavar="N", help="one report with N records, written to --out FILE")
    mode.add_argument("--many", type=int, metavar="N", help="N small reports, written into the folder --out DIR")
    mode.add_argument("--hostile", metavar="DIR", help="adversarial files (listed below) into DIR")
    p.add_argument("--out", metavar="PATH", help="the file (--records) or folder (--many)")
    p.add_argument("--seed", type=int, default=21, help="random seed (default 21)")
    p.add_argument("--compress", choices=("none", "gzip", "zip", "eml"), default="none",
                   help="container of each report (default none: bare XML)")
    p.add_argument("--records-per-report", default="1-20", metavar="MIN-MAX",
                   help="records in each report of --many (default 1-20)")
    p.add_argument("--orgs", default="reporter-a.example,reporter-b.example,Mail Provider C",
                   help="reporting organisations (org_name), comma-separated")
    p.add_argument("--domains", default="example.com,example.net,example.org",
                   help="policy domains reported on (policy_published domain, header_from), comma-separated")
    p.add_argument("--selectors", default="s2024,mail,default", help="DKIM selectors, comma-separated")
    p.add_argument("--sources", default="192.0.2.0/24,198.51.100.0/24,203.0.113.0/24,2001:db8::/64",
                   help="source IP networks (IPv4 and IPv6), comma-separated")
    p.add_argument("--begin", default="2024-04-01", metavar="YYYY-MM-DD",
                   help="first day of the date range, UTC (default 2024-04-01)")
    p.add_argument("--days", type=int, default=30,
                   help="the reports' day-long date ranges fall within this many days from --begin (default 30)")
    p.add_argument("--max-dkim", type=int, default=2, help="at most this many DKIM results a record (default 2)")
    p.add_argument("--max-spf", type=int, default=1, help="at most this many SPF results a record (default 1)")
    p.add_argument("--bomb-mb", type=int, default=1024, help="--hostile: gzip bomb's decompressed MiB (default 1024)")
    p.add_argument("--cap-mb", type=int, default=64,
                   help="--hostile: the parser's decompressed-size cap in MiB; the zip member is 1 MiB over it (default 64)")
    p.add_argument("--zip-members", type=int, default=10000, help="--hostile: members of zip-many-members.zip (default 10000)")
    p.add_argument("--zip-member-kb", type=int, default=100, help="--hostile: KiB of each of those members (default 100)")
    p.add_argument("--depth", type=int, default=100000, help="--hostile: nesting depth of deep.xml (default 100000)")
    a = p.parse_args(argv)
    if a.hostile is None and not a.out:
        p.error("--out is required with --records and --many")
    for name in ("orgs", "domains", "selectors", "sources"):
        setattr(a, name, [x.strip() for x in getattr(a, name).split(",") if x.strip()])
        if not getattr(a, name):
            p.error("--%s is empty" % name)
    a.sources = [ipaddress.ip_network(s, strict=False) for s in a.sources]
    try:
        lo, hi = (int(x) for x in a.records_per_report.split("-", 1))
    except ValueError:
        p.error("--records-per-report: MIN-MAX")
    if not 0 <= lo <= hi:
        p.error("--records-per-report: 0 <= MIN <= MAX")
    a.records_per_report = (lo, hi)
    a.begin = int(datetime.strptime(a.begin, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
    if a.days < 1 or a.max_dkim < 0 or a.max_spf < 1:
        p.error("--days >= 1, --max-dkim >= 0, --max-spf >= 1")
    return a


class Reports:
    """Random report content, drawn from one seeded generator."""

    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.serial = 0

    def ip(self):
        net = self.rng.choice(self.a.sources)
        return str(net.network_address + self.rng.randrange(min(net.num_addresses, 1 << 32)))

    def header(self, org, domain, begin, end, report_id, policy):
        p, sp, pct = policy
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<feedback>\n  <version>1.0</version>\n'
                '  <report_metadata>\n    <org_name>%s</org_name>\n    <email>noreply-dmarc@%s</email>\n'
                '    <report_id>%s</report_id>\n    <date_range>\n      <begin>%d</begin>\n      <end>%d</end>\n'
                '    </date_range>\n  </report_metadata>\n  <policy_published>\n    <domain>%s</domain>\n'
                '    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>%s</p>\n    <sp>%s</sp>\n    <pct>%d</pct>\n'
                '  </policy_published>\n'
                % (escape(org), escape(org.replace(" ", "-").lower()), escape(report_id), begin, end,
                   escape(domain), p, sp, pct))

    FOOTER = "</feedback>\n"

    def record(self, domain, policy):
        rng = self.rng
        dkim = []
        for _ in range(rng.randint(0, self.a.max_dkim)):
            d = rng.choice((domain, domain, "mail." + domain, "esp-%d.example" % rng.randrange(50)))
            dkim.append((d, rng.choice(self.a.selectors),
                         rng.choices(("pass", "fail", "neutral", "temperror", "permerror"), (80, 12, 2, 3, 3))[0]))
        spf = []
        for _ in range(rng.randint(1, self.a.max_spf)):
            d = rng.choice(("bounce." + domain, domain, "esp-%d.example" % rng.randrange(50)))
            spf.append((d, "mfrom", rng.choices(("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"),
                                                (70, 10, 10, 2, 4, 2, 2))[0]))

        def aligned(d):
            return d == domain or d.endswith("." + domain)

        dkim_ok = any(r == "pass" and aligned(d) for d, _, r in dkim)
        spf_ok = any(r == "pass" and aligned(d) for d, _, r in spf)
        p, _, pct = policy
        disposition = "none" if dkim_ok or spf_ok or rng.randrange(100) >= pct else p
        out = ["  <record>\n    <row>\n      <source_ip>%s</source_ip>\n      <count>%d</count>\n"
               "      <policy_evaluated>\n        <disposition>%s</disposition>\n        <dkim>%s</dkim>\n"
               "        <spf>%s</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n"
               "      <header_from>%s</header_from>\n    </identifiers>\n    <auth_results>\n"
               % (self.ip(), rng.choice((1, 1, 1, 2, 3, rng.randint(4, 5000))), disposition,
                  "pass" if dkim_ok else "fail", "pass" if spf_ok else "fail", domain)]
        for d, s, r in dkim:
            out.append("      <dkim>\n        <domain>%s</domain>\n        <selector>%s</selector>\n"
                       "        <result>%s</result>\n      </dkim>\n" % (d, escape(s), r))
        for d, s, r in spf:
            out.append("      <spf>\n        <domain>%s</domain>\n        <scope>%s</scope>\n"
                       "        <result>%s</result>\n      </spf>\n" % (d, s, r))
        out.append("    </auth_results>\n  </record>\n")
        return "".join(out)

    def meta(self):
        """org, domain, begin, end, report_id, policy of the next report."""
        rng = self.rng
        self.serial += 1
        begin = self.a.begin + 86400 * rng.randrange(self.a.days)
        policy = (rng.choice(("none", "quarantine", "reject")), rng.choice(("none", "quarantine", "reject")),
                  rng.choice((100, 100, 100, 50, 10)))
        report_id = "%d.%d.%016x" % (self.a.seed, self.serial, rng.getrandbits(64))
        return rng.choice(self.a.orgs), rng.choice(self.a.domains), begin, begin + 86399, report_id, policy

    def chunks(self, records, meta=None):
        """The report's XML in pieces (str), and its meta."""
        org, domain, begin, end, report_id, policy = meta or self.meta()
        yield self.header(org, domain, begin, end, report_id, policy)
        for _ in range(records):
            yield self.record(domain, policy)
        yield self.FOOTER


def gzip_bytes(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def zip_bytes(name, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo(name, ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
    return buf.getvalue()


def report_mail(meta, xml, serial):
    org, domain, begin, end, report_id, _ = meta
    sender = org.replace(" ", "-").lower()
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "noreply-dmarc@%s" % sender
    msg["To"] = "dmarc-reports@%s" % domain
    msg["Subject"] = "Report Domain: %s Submitter: %s Report-ID: <%s>" % (domain, sender, report_id)
    msg["Date"] = email.utils.formatdate(end + 3600, usegmt=True)
    msg["Message-ID"] = "<%d.%s@%s>" % (serial, report_id, sender)
    msg.set_content("This is an aggregate report from %s.\n" % org)
    msg.add_attachment(gzip_bytes(xml), maintype="application", subtype="gzip",
                       filename="%s!%s!%d!%d.xml.gz" % (sender, domain, begin, end))
    return msg.as_bytes()


def contained(kind, name, meta, xml, serial):
    """(suffix, bytes) of a report in the chosen container."""
    if kind == "gzip":
        return ".xml.gz", gzip_bytes(xml)
    if kind == "zip":
        return ".zip", zip_bytes(name + ".xml", xml)
    if kind == "eml":
        return ".eml", report_mail(meta, xml, serial)
    return ".xml", xml


def one_report(a):
    gen = Reports(a)
    meta = gen.meta()
    path = a.out
    if a.compress == "none":
        # Streamed: a report of millions of records never sits in memory whole.
        with open(path, "w", encoding="utf-8", buffering=4 * MIB) as f:
            for chunk in gen.chunks(a.records, meta):
                f.write(chunk)
        size = os.path.getsize(path)
    else:
        xml = "".join(gen.chunks(a.records, meta)).encode()
        size = len(xml)
        _, data = contained(a.compress, os.path.basename(path).split(".")[0], meta, xml, 1)
        with open(path, "wb") as f:
            f.write(data)
    print("generate_reports: 1 report, %d records, %d bytes of XML, %d bytes written to %s"
          % (a.records, size, os.path.getsize(path), path), file=sys.stderr)


def many_reports(a):
    gen = Reports(a)
    os.makedirs(a.out, exist_ok=True)
    records = xml_bytes = written = 0
    lo, hi = a.records_per_report
    for i in range(1, a.many + 1):
        meta = gen.meta()
        n = gen.rng.randint(lo, hi)
        xml = "".join(gen.chunks(n, meta)).encode()
        org, domain, begin, end = meta[:4]
        name = "%s!%s!%d!%d!%06d" % (org.replace(" ", "-").lower(), domain, begin, end, i)
        suffix, data = contained(a.compress, name, meta, xml, i)
        with open(os.path.join(a.out, name + suffix), "wb") as f:
            f.write(data)
        records += n
        xml_bytes += len(xml)
        written += len(data)
    print("generate_reports: %d reports, %d records, %d bytes of XML, %d bytes written in %s"
          % (a.many, records, xml_bytes, written, a.out), file=sys.stderr)


# --- hostile files --------------------------------------------------------------------------

def small_report(gen, records=2):
    meta = gen.meta()
    return "".join(gen.chunks(records, meta)), meta


def padded_parts(gen):
    """A valid one-record report cut before its record: (head, tail). Whitespace put between
    them leaves it a valid report."""
    xml, _ = small_report(gen, 1)
    cut = xml.index("  <record>")
    return xml[:cut].encode(), xml[cut:].encode()


def spaces(total):
    """total bytes of spaces, a MiB at a time."""
    block = b" " * MIB
    while total > 0:
        yield block if total >= MIB else block[:total]
        total -= MIB


def with_field(xml, tag, text):
    """xml with the first <tag>'s content replaced by text (markup allowed)."""
    return re.sub("<%s>[^<]*</%s>" % (tag, tag), lambda m: "<%s>%s</%s>" % (tag, text, tag), xml, count=1)


def gzip_bomb(path, gen, pad_bytes):
    head, tail = padded_parts(gen)
    # A gzip member by hand (RFC 1952): header with mtime 0, raw deflate, CRC-32 and ISIZE.
    crc = zlib.crc32(head)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        f.write(c.compress(head))
        for piece in spaces(pad_bytes):
            crc = zlib.crc32(piece, crc)
            f.write(c.compress(piece))
        f.write(c.compress(tail))
        crc = zlib.crc32(tail, crc)
        f.write(c.flush())
        f.write(struct.pack("<II", crc & 0xFFFFFFFF, (len(head) + pad_bytes + len(tail)) & 0xFFFFFFFF))


def zip_padded(z, name, gen, pad_bytes):
    head, tail = padded_parts(gen)
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    with z.open(info, "w", force_zip64=len(head) + pad_bytes + len(tail) >= 0xFFFFFFFF) as m:
        m.write(head)
        for piece in spaces(pad_bytes):
            m.write(piece)
        m.write(tail)


def lie_about_size(path, claimed):
    """Rewrites the uncompressed size of a one-member zip in both headers to `claimed`."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        # Local file header: signature PK\3\4, uncompressed size at offset 22.
        assert data[:4] == b"PK\x03\x04"
        struct.pack_into("<I", data, 22, claimed)
        # Central directory header: signature PK\1\2, uncompressed size at offset 24.
        cd = data.rindex(b"PK\x01\x02")
        struct.pack_into("<I", data, cd + 24, claimed)
        f.seek(0)
        f.write(data)


def hostile(a):
    out = a.hostile
    os.makedirs(out, exist_ok=True)
    gen = Reports(a)
    manifest = []

    def put(name, data, attack, expect):
        if data is not None:
            with open(os.path.join(out, name), "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode())
        manifest.append((name, attack, expect))

    xml, _ = small_report(gen)
    body = xml.split("\n", 1)[1]  # without the XML declaration

    levels = ['<!ENTITY lol0 "lol">'] + ['<!ENTITY lol%d "%s">' % (i, ("&lol%d;" % (i - 1)) * 10) for i in range(1, 10)]
    put("billion-laughs.xml",
        '<?xml version="1.0"?>\n<!DOCTYPE feedback [\n  %s\n]>\n' % "\n  ".join(levels)
        + with_field(body, "org_name", "&lol9;"),
        "entity expansion: 10^10 copies", "refuse; bounded memory and time")

    put("quadratic-blowup.xml",
        '<?xml version="1.0"?>\n<!DOCTYPE feedback [\n  <!ENTITY a "%s">\n]>\n' % ("a" * 50000)
        + with_field(body, "org_name", "&a;" * 50000),
        "entity expansion: 50,000 x 50,000 characters", "refuse; bounded memory and time")

    put("xxe-secret.txt", "XXE-SECRET-a3f09c\n", "the file external-entity.xml points at", "never appears in any output")
    put("external-entity.xml",
        '<?xml version="1.0"?>\n<!DOCTYPE feedback [\n  <!ENTITY xxe SYSTEM "xxe-secret.txt">\n]>\n'
        + with_field(body, "org_name", "&xxe;"),
        "external entity (XXE) in org_name", "refuse, or leave unexpanded: XXE-SECRET never in output")

    put("xxe-external.dtd", '<!ENTITY org "XXE-SECRET-DTD-5be1">\n', "the DTD external-dtd.xml points at",
        "never loaded")
    put("external-dtd.xml",
        '<?xml version="1.0"?>\n<!DOCTYPE feedback SYSTEM "xxe-external.dtd">\n' + with_field(body, "org_name", "&org;"),
        "external DTD defining the entity in org_name", "refuse, or do not load it: XXE-SECRET never in output")

    cut = body.index("    <auth_results>")
    put("deep.xml", '<?xml version="1.0"?>\n' + body[:cut] + "<x>" * a.depth + "</x>" * a.depth + "\n" + body[cut:],
        "%d nested elements" % a.depth, "refuse by a depth limit; no stack overflow")

    bomb = a.bomb_mb * MIB
    gzip_bomb(os.path.join(out, "gzip-bomb.xml.gz"), gen, bomb)
    put("gzip-bomb.xml.gz", None, "gzip: %d MiB of whitespace, %d bytes compressed"
        % (a.bomb_mb, os.path.getsize(os.path.join(out, "gzip-bomb.xml.gz"))), "refuse at the decompressed-size cap")

    with zipfile.ZipFile(os.path.join(out, "zip-many-members.zip"), "w") as z:
        for i in range(a.zip_members):
            zip_padded(z, "report-%05d.xml" % i, gen, a.zip_member_kb * 1024)
    put("zip-many-members.zip", None, "zip: %d members of %d KiB" % (a.zip_members, a.zip_member_kb),
        "refuse at the member-count or total-size cap")

    over = (a.cap_mb + 1) * MIB
    with zipfile.ZipFile(os.path.join(out, "zip-member-over-cap.zip"), "w") as z:
        zip_padded(z, "report.xml", gen, over)
    put("zip-member-over-cap.zip", None, "zip: one member of %d MiB + a report" % (a.cap_mb + 1),
        "refuse: over the %d MiB cap" % a.cap_mb)

    lie = os.path.join(out, "zip-size-lie.zip")
    with zipfile.ZipFile(lie, "w") as z:
        zip_padded(z, "report.xml", gen, over)
    lie_about_size(lie, 1000)
    put("zip-size-lie.zip", None, "zip: as zip-member-over-cap.zip, headers claim 1,000 bytes",
        "refuse: the cap counts inflated bytes")

    xml, _ = small_report(gen, 20)
    gz = gzip_bytes(xml.encode())
    put("truncated.xml.gz", gz[: len(gz) // 2], "gzip cut in half", "refuse: unexpected end of data")
    put("trailing-garbage.xml.gz", gz + bytes(gen.rng.randrange(256) for _ in range(64)),
        "a whole gzip member + 64 random bytes", "the parser's stated choice (Mail::DMARC ignores them)")
    xml2, _ = small_report(gen, 3)
    put("two-members.xml.gz", gz + gzip_bytes(xml2.encode()), "two gzip members, each a whole report",
        "the parser's stated choice: never a merged report")

    xml, _ = small_report(gen, 1)
    xml = with_field(with_field(with_field(xml, "count", "18446744073709551616"), "begin", "-1"),
                     "end", "99999999999999999999")
    put("integer-overflow.xml", xml, "count 2^64, begin -1, end 10^20", "refuse or reject the fields; never wrap")

    with open(os.path.join(out, "MANIFEST.tsv"), "w") as f:
        f.write("file\tattack\texpect\n")
        for row in manifest:
            f.write("\t".join(row) + "\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n, _, _ in manifest)
    print("generate_reports: %d hostile files, %d bytes written in %s" % (len(manifest), total, out),
          file=sys.stderr)


def main(argv):
    a = parse_args(argv)
    if a.hostile is not None:
        hostile(a)
    elif a.records is not None:
        one_report(a)
    else:
        many_reports(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
