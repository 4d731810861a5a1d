#!/usr/bin/env bash
# dmarc-cat (Debian's dmarc-cat 0.15.0, Go) as a second, partial reader of DMARC aggregate
# reports, beside mail_dmarc_parse.pl: one JSON line per report it reads, in a subset of our
# `reports parse --json` shape, on stdout.
#
#   tests/reports/dmarc_cat_check.sh FILE...
#
# What dmarc-cat can do as an oracle (read from its source and checked on
# tests/data/dmarc-reports/; tests/reports/README.md has the evidence):
#   - it reads bare .xml, .xml.gz and .zip (the first member named *.xml), chosen by the
#     file name's extension, and only under an RFC 7489 §7.2.1.1 name
#     (receiver!domain!begin!end[!id].ext): anything else is "SelectInput: bad filename".
#     This script links each FILE into a temporary folder under such a name. From stdin it
#     reads bare XML only (-t is lost: the file type is taken from the name "-");
#   - it reads no report mails (.eml), no failure reports, no TLS reports;
#   - Go's encoding/xml matches elements by local name, so unlike Mail::DMARC it reads RFC
#     9990 reports in the urn:ietf:params:xml:ns:dmarc-2.0 namespace; it loads no DTD and
#     expands no entity (the XXE files of generate_reports.py --hostile are refused);
#   - it prints a text table, not data: org_name, email, the date range (as local time:
#     TZ=UTC here), policy domain, p, adkim, aspf; per record the source IP, count,
#     header_from, ONE DKIM result and ONE SPF result (the last <dkim>/<spf> of the record:
#     the Go struct has one field for each), and one "RFrom" domain (the DKIM domain, or the
#     SPF domain where the DKIM one is empty). No report_id, sp, pct, np, selector, scope,
#     disposition, envelope fields;
#   - the table is sorted (here by source IP, -S '"IP" "asc"'), so record order is lost:
#     compare records as a multiset. Its IP column is filled in the order its resolver
#     workers finish, not by row: -N (no DNS) and -j 1 keep each IP on its own row.
# So: a check of the counts, IPs, header_from and one result per method, and the only
# Debian reader here for namespaced RFC 9990 reports; not a full oracle.
#
# Output per report: {"kind":"aggregate","oracle":"dmarc-cat","org_name","email","domain",
# "begin","end","policy":{"domain","p","adkim","aspf"},"records":[{"source_ip","count",
# "header_from","auth_domain","dkim":[{"result"}],"spf":[{"result"}]}]}, records sorted by
# source_ip; dkim/spf empty where dmarc-cat shows no result. Exit 2 if any FILE could not be
# read, after the others.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE..." >&2; exit 2; }
command -v dmarc-cat >/dev/null || { echo "dmarc_cat_check: dmarc-cat missing (bash .ci/install-deps.sh)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
n=0
for file in "$@"; do
  n=$((n + 1))
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then
    echo "$file: not read: no such readable file" >&2
    status=2
    continue
  fi
  case "$file" in
    *.xml.gz | *.gz) ext=.xml.gz ;;
    *.zip) ext=.zip ;;
    *) ext=.xml ;;
  esac
  name="$tmp/check!report.example!0!0!$n$ext"
  ln -s "$(realpath "$file")" "$name"
  if TZ=UTC dmarc-cat -N -j 1 -S '"IP" "asc"' "$name" >"$tmp/out" 2>"$tmp/err"; then
    /usr/bin/python3 - "$tmp/out" <<'PY' || { echo "$file: not read: dmarc-cat's table not understood" >&2; status=2; }
import calendar, json, sys, time
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
def after(prefix):
    return next(l[len(prefix):] for l in lines if l.startswith(prefix))
def seconds(text):
    return calendar.timegm(time.strptime(text.strip(), "%Y-%m-%d %H:%M:%S +0000 UTC"))
org, _, email = after("Reporting by: ").partition(" \u2014 ")
begin, _, end = after("From ").partition(" to ")
domain = after("Domain: ").strip()
policy = {"domain": domain}
for part in after("Policy: ").split(";"):
    key, _, value = part.strip().partition("=")
    if value:
        policy[{"p": "p", "dkim": "adkim", "spf": "aspf"}[key]] = value
head = next(i for i, l in enumerate(lines) if l.startswith("IP "))
columns = lines[head].split()
starts = [lines[head].index(c) for c in columns]
records = []
for row in lines[head + 1:]:
    if not row.strip():
        continue
    cell = {c: row[s:(starts[i + 1] if i + 1 < len(starts) else None)].strip()
            for i, (c, s) in enumerate(zip(columns, starts))}
    records.append({"source_ip": cell["IP"], "count": int(cell["Count"]), "header_from": cell["From"],
                    "auth_domain": cell["RFrom"],
                    "dkim": [{"result": cell["RDKIM"].lower()}] if cell["RDKIM"] else [],
                    "spf": [{"result": cell["RSPF"].lower()}] if cell["RSPF"] else []})
print(json.dumps({"kind": "aggregate", "oracle": "dmarc-cat", "org_name": org.strip(), "email": email.strip(),
                  "domain": domain, "begin": seconds(begin), "end": seconds(end), "policy": policy,
                  "records": records}, sort_keys=True))
PY
  else
    error=$(sed -n 's/^.*Error: //p' "$tmp/err" | head -1)
    echo "$file: not read: ${error//"$name"/"$file"}" >&2
    status=2
  fi
  rm -f "$name"
done
exit $status
