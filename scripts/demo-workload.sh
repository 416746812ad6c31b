#!/usr/bin/env bash
# The main job's workload (run by scripts/demo.sh once ppf is installed and the
# emulated peripheral and ppfd run): brings up libvirtd, packs four encrypted
# service images for tenant "demo" whose quota holds only two of them, defines
# four ppf domains and a plain one, then starts and stops the services in a
# recurring order (a, b, c, d, a, b, ...) for a few rounds.  ppf learns the order
# and prefetches the next service while the current one runs, evicting what is
# needed least: after the first round, `virsh start` is served from the buffer.
# Writes a report of every start (outcome, wall time) and a picture of it:
# /var/lib/ppf/demo/report.md and report.svg.  Leaves libvirtd and the domains
# (shut off) in place and says how to remove them.
#
# Options: --rounds N (default 4), --size MiB (image size, default 192).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
rounds=4
size_mib=192
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo-workload: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $rounds in ''|*[!0-9]*|0) echo "demo-workload: --rounds takes a number >= 1" >&2; exit 2 ;; esac
case $size_mib in ''|*[!0-9]*|0) echo "demo-workload: --size takes MiB >= 1" >&2; exit 2 ;; esac
say() { printf '\n==== ppf demo: %s ====\n' "$*"; }

out=/var/lib/ppf/demo
store=/var/lib/ppf/images
disks=/var/lib/ppf/demo-disks
key=/etc/ppf/demo.key
services=(a b c d)
mkdir -p "$out" "$store" "$disks"

say "bringing up libvirtd and virtlogd (scripts/libvirt-up.sh)"
bash scripts/libvirt-up.sh
# the ppf hook was installed by make install; libvirtd reads hooks at start
# and on SIGHUP
pid=$(pgrep -x libvirtd | head -1 || true)
[ -n "$pid" ] && kill -HUP "$pid" && sleep 1
tmpdir=$out         # libvirt-functions.sh keeps serial logs there
. tests/libvirt-functions.sh

if [ ! -s "$key" ]; then
    (umask 077; head -c 32 /dev/urandom >"$key")
fi
for s in "${services[@]}"; do
    img=$store/demo-svc-$s.ppfi
    [ -s "$img" ] && [ "$(stat -c %s "$key")" = 32 ] && [ "$img" -nt "$key" ] && continue
    say "packing service image demo-svc-$s ($size_mib MiB, encrypted for tenant demo)"
    raw=$(mktemp /var/tmp/ppf-demo.XXXXXX)
    truncate -s "${size_mib}M" "$raw"
    head -c "$((size_mib / 3))M" /dev/urandom | dd of="$raw" bs=1M seek=1 conv=notrunc status=none
    ppf-image pack --key "$key" "$raw" "$img" >/dev/null
    rm -f "$raw"
done

domxml() {  # domxml NAME DISK [META]: the tests' small domain (serial log in $out)
    test_domain_xml "$1" "$2" "${3:-}"
}
say "defining domains ppf-demo-{a,b,c,d} (ppf metadata) and ppf-demo-plain (a plain qcow2)"
for s in "${services[@]}"; do
    name=ppf-demo-$s
    ppf_virsh destroy "$name" >/dev/null 2>&1 || true
    ppf_virsh undefine "$name" >/dev/null 2>&1 || true    # (a previous run's)
    meta="<ppf:deploy xmlns:ppf=\"urn:ppf:libvirt:1.0\" image=\"demo-svc-$s\" tenant=\"demo\" ephemeral=\"yes\"/>"
    domxml "$name" "$disks/$name.qcow2" "$meta" >"$out/$name.xml"
    ppf_virsh define "$out/$name.xml" >/dev/null
done
ppf_virsh destroy ppf-demo-plain >/dev/null 2>&1 || true
ppf_virsh undefine ppf-demo-plain >/dev/null 2>&1 || true
[ -s "$disks/ppf-demo-plain.qcow2" ] || qemu-img create -q -f qcow2 "$disks/ppf-demo-plain.qcow2" 64M
domxml ppf-demo-plain "$disks/ppf-demo-plain.qcow2" >"$out/ppf-demo-plain.xml"
ppf_virsh define "$out/ppf-demo-plain.xml" >/dev/null

counter() {  # counter JSON NAME
    sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" <<<"$(tr ',' '\n' <<<"$1")" | head -1
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

say "the workload: $rounds rounds of a, b, c, d (each starts, runs 2 s, stops), plus the plain domain"
echo "round,domain,image,outcome,start_ms" >"$out/starts.csv"
for r in $(seq "$rounds"); do
    t0=$(now_ms)
    ppf_virsh start ppf-demo-plain >/dev/null
    t=$(( $(now_ms) - t0 ))
    echo "$r,ppf-demo-plain,-,plain,$t" >>"$out/starts.csv"
    printf 'round %d  %-16s %-8s %6d ms\n' "$r" ppf-demo-plain plain "$t"
    ppf_virsh destroy ppf-demo-plain >/dev/null
    for s in "${services[@]}"; do
        name=ppf-demo-$s
        before=$(ppfctl --json stats)
        t0=$(now_ms)
        ppf_virsh start "$name" >/dev/null
        t=$(( $(now_ms) - t0 ))
        after=$(ppfctl --json stats)
        outcome=other
        for o in hit:hits in-flight:inflight_hits miss:misses; do
            if [ "$(counter "$after" "${o#*:}")" != "$(counter "$before" "${o#*:}")" ]; then
                outcome=${o%%:*}
            fi
        done
        echo "$r,$name,demo-svc-$s,$outcome,$t" >>"$out/starts.csv"
        printf 'round %d  %-16s %-8s %6d ms\n' "$r" "$name" "$outcome" "$t"
        sleep 2         # the service runs; ppf prepares what comes next
        ppf_virsh destroy "$name" >/dev/null
    done
done

say "report: $out/report.md and $out/report.svg"
ppfctl --json stats >"$out/stats.json"
ppfctl table >"$out/table.txt" 2>/dev/null || true
python3 - "$out" <<'EOF'
import csv, statistics, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/starts.csv")))
for r in rows:
    r["round"] = int(r["round"]); r["start_ms"] = int(r["start_ms"])
ppf = [r for r in rows if r["outcome"] != "plain"]
plain = [r["start_ms"] for r in rows if r["outcome"] == "plain"]
def med(v): return statistics.median(v) if v else float("nan")
lines = ["# ppf demo: `virsh start` served from the prefetch buffer", "",
         "Four services (encrypted images, tenant `demo`, whose quota holds two of them) "
         "started in a recurring order; ppf learns the order and prepares the next one "
         "while the current one runs.", "",
         "| round | hits | in flight | misses | median start (ms) |", "|---|---|---|---|---|"]
for k in sorted({r["round"] for r in ppf}):
    rr = [r for r in ppf if r["round"] == k]
    c = {o: sum(1 for r in rr if r["outcome"] == o) for o in ("hit", "in-flight", "miss")}
    lines.append(f"| {k} | {c['hit']} | {c['in-flight']} | {c['miss']} | "
                 f"{med([r['start_ms'] for r in rr]):.0f} |")
lines += ["", "| case | starts | median (ms) | vs plain |", "|---|---|---|---|"]
pm = med(plain)
for o in ("plain", "hit", "in-flight", "miss"):
    v = plain if o == "plain" else [r["start_ms"] for r in ppf if r["outcome"] == o]
    if v:
        lines.append(f"| {o} | {len(v)} | {med(v):.0f} | {med(v) / pm:.2f}x |")
later = [r for r in ppf if r["round"] > 1]
if later:
    h = sum(1 for r in later if r["outcome"] in ("hit", "in-flight"))
    lines += ["", f"After the first round: {h} of {len(later)} starts served from the buffer "
              f"({100 * h / len(later):.0f} %)."]
lines += ["", "Every start: starts.csv; the prediction table: table.txt; counters: stats.json."]
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# the picture: one bar per start, coloured by outcome
color = {"hit": "#2e7d32", "in-flight": "#f9a825", "miss": "#c62828", "plain": "#9e9e9e",
         "other": "#5e35b1"}
W, H, L, B = 900, 360, 60, 40
n = len(rows); top = max(r["start_ms"] for r in rows) * 1.15 or 1
bw = (W - L - 20) / max(n, 1)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
       f'font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">virsh start wall time '
       f'per start (ms): ppf domains and a plain domain</text>']
for i in range(5):
    v = top * i / 4; y = H - B - (H - B - 30) * i / 4
    svg.append(f'<line x1="{L}" x2="{W - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.0f}</text>')
for i, r in enumerate(rows):
    h = (H - B - 30) * r["start_ms"] / top
    x = L + i * bw
    svg.append(f'<rect x="{x + 1:.1f}" y="{H - B - h:.1f}" width="{bw - 2:.1f}" '
               f'height="{h:.1f}" fill="{color.get(r["outcome"], "#000")}">'
               f'<title>round {r["round"]} {r["domain"]}: {r["outcome"]}, '
               f'{r["start_ms"]} ms</title></rect>')
    if i == 0 or rows[i - 1]["round"] != r["round"]:
        svg.append(f'<text x="{x:.1f}" y="{H - B + 16}">round {r["round"]}</text>')
lx = L
for o in ("plain", "hit", "in-flight", "miss"):
    svg.append(f'<rect x="{lx}" y="{H - 14}" width="10" height="10" fill="{color[o]}"/>')
    svg.append(f'<text x="{lx + 14}" y="{H - 5}">{o}</text>')
    lx += 90
svg.append("</svg>")
open(f"{out}/report.svg", "w").write("\n".join(svg) + "\n")
EOF
cat <<EOT

The domains stay defined (shut off): virsh list --all | grep ppf-demo
  remove them:  for d in a b c d plain; do virsh undefine ppf-demo-\$d; done
  run again:    bash $src/scripts/demo-workload.sh [--rounds N]
EOT
