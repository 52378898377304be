#!/usr/bin/env bash
# Re-records demo.pcap from real loopback traffic with tapmirror itself
# (needs root or CAP_NET_RAW): a demo shop service on 127.0.0.1:8080,
# traffic.py's clients, `tapmirror capture -i lo -p 8080`.
set -euo pipefail
cd "$(dirname "$0")"
tapmirror=${1:-../build/default/tapmirror}
log=$(mktemp)
python3 service.py --port 8080 "$log" &
svc=$!
trap 'kill $svc 2>/dev/null || true; rm -f "$log"' EXIT
sleep 0.5
"$tapmirror" capture -i lo -p 8080 -o demo.pcap -q &
cap=$!
sleep 1
python3 traffic.py 8080
sleep 0.5
kill -INT $cap
wait $cap
"$tapmirror" summary demo.pcap
