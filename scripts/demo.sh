#!/usr/bin/env bash
# make demo: replays the bundled capture (demo/demo.pcap, recorded by
# tapmirror from real loopback HTTP traffic to port 8080) into a demo
# service started on a free loopback port, then shows what it received.
set -euo pipefail
cd "$(dirname "$0")/.."
tapmirror=${1:-build/default/tapmirror}
work=$(mktemp -d)
svc=
cleanup() {
    [ -n "$svc" ] && kill "$svc" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

python3 demo/service.py "$work/port" "$work/received" &
svc=$!
for _ in $(seq 100); do
    [ -s "$work/port" ] && break
    sleep 0.05
done
port=$(cat "$work/port")

echo "== The capture: tapmirror summary demo/demo.pcap"
"$tapmirror" summary demo/demo.pcap
echo
echo "== Replaying it into a demo service on 127.0.0.1:$port"
echo "   tapmirror replay demo/demo.pcap -p 8080 --to :$port"
"$tapmirror" replay demo/demo.pcap -p 8080 --to ":$port" \
    --stats-json "$work/stats.json"

# The service logs each request once it has read it whole.
want=6
for _ in $(seq 100); do
    [ "$(wc -l <"$work/received" 2>/dev/null || echo 0)" -ge $want ] && break
    sleep 0.05
done
echo
echo "== What the demo service received"
python3 - "$work/received" "$work/stats.json" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
conns = {}
for r in reqs:
    conns.setdefault(r["peer"], []).append(r)
for n, (peer, rs) in enumerate(conns.items(), 1):
    print(f"  local connection {n} (from {peer}):")
    for r in rs:
        body = f", body {r['body']} bytes" if r["body"] else ""
        print(f"    {r['method']} {r['path']}{body}")
st = json.load(open(sys.argv[2]))
t = st["targets"][0]
print(f"\n  {len(reqs)} requests on {len(conns)} connections; "
      f"{t['bytes_delivered']} bytes delivered, "
      f"{st['flows']['payload_bytes']} client bytes in the capture.")
PY

echo
echo "== Comparing the local build's answers with production's"
echo "   tapmirror replay demo/demo.pcap -p 8080 --to :$port --compare --diff-log DIFF"
"$tapmirror" replay demo/demo.pcap -p 8080 --to ":$port" --compare \
    --diff-log "$work/diff.jsonl" 2>"$work/compare.txt"
grep -E "compared|endpoint|  [A-Z]+ /" "$work/compare.txt" || true
python3 - "$work/diff.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    for diff in d.get("differences", []):
        print(f"   {d['request']}: {diff.get('line', diff.get('field'))}")
PY
