#!/usr/bin/env bash
# Self-test of the test tools themselves: checks that tmgen writes captures
# tcpdump reads cleanly and whose manifest matches an independent
# reassembly, and that tmsink's manifest matches what a client sent.
#
# usage: tools/selftest.sh path/to/tmgen path/to/tmsink
# Needs bash, python3 and tcpdump (TCPDUMP=... to override). Builds nothing.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 path/to/tmgen path/to/tmsink" >&2
    exit 2
fi
TMGEN=$1
TMSINK=$2
TCPDUMP=${TCPDUMP:-tcpdump}
for tool in "$TMGEN" "$TMSINK"; do
    if [[ ! -x $tool ]]; then
        echo "selftest: $tool is not an executable" >&2
        exit 2
    fi
done
command -v python3 > /dev/null || { echo "selftest: python3 missing" >&2; exit 2; }
command -v "$TCPDUMP" > /dev/null || { echo "selftest: tcpdump missing" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tm-selftest.XXXXXX")
SINK_PID=
cleanup() {
    if [[ -n $SINK_PID ]]; then
        kill "$SINK_PID" 2> /dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "selftest: FAIL: $*" >&2
    exit 1
}

# Independent reader: parses the capture (pcap/pcapng, every link type tmgen
# writes), rebuilds each client stream from the captured bytes, and checks
# the manifest's bytes, fnv64, gaps and packet count. It also checks that no
# server ACK covers client bytes the capture shows only later, since a
# reassembler would then give them up as lost too early.
cat > "$WORK/check_capture.py" << 'PYEOF'
import json
import struct
import sys

FNV_OFFSET, FNV_PRIME, MASK64 = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def records(path):
    blob = open(path, 'rb').read()
    magic = blob[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1',
                 b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '<' if magic[0] in (0xd4, 0x4d) else '>'
        linktype = struct.unpack(e + 'I', blob[20:24])[0]
        pos = 24
        while pos < len(blob):
            caplen, wirelen = struct.unpack(e + 'II', blob[pos + 8:pos + 16])
            if caplen > wirelen:
                sys.exit('record caplen > wire length')
            yield linktype, blob[pos + 16:pos + 16 + caplen]
            pos += 16 + caplen
        if pos != len(blob):
            sys.exit('trailing bytes after the last record')
        return
    if magic != b'\x0a\x0d\x0d\x0a':
        sys.exit('unknown capture format')
    e = '<' if blob[8:12] == b'\x4d\x3c\x2b\x1a' else '>'
    links, pos = [], 0
    while pos < len(blob):
        btype, blen = struct.unpack(e + 'II', blob[pos:pos + 8])
        if blen % 4 or struct.unpack(e + 'I', blob[pos + blen - 4:pos + blen])[0] != blen:
            sys.exit('bad pcapng block length at byte %d' % pos)
        if btype == 1:
            links.append(struct.unpack(e + 'H', blob[pos + 8:pos + 10])[0])
        elif btype == 6:
            iface, _, _, caplen, wirelen = struct.unpack(e + 'IIIII', blob[pos + 8:pos + 28])
            yield links[iface], blob[pos + 28:pos + 28 + caplen]
        pos += blen


def ip_start(linktype, pkt):
    if linktype == 1:
        off = 12
        while struct.unpack('>H', pkt[off:off + 2])[0] in (0x8100, 0x88a8):
            off += 4
        etype, off = struct.unpack('>H', pkt[off:off + 2])[0], off + 2
    elif linktype == 113:
        etype, off = struct.unpack('>H', pkt[14:16])[0], 16
    elif linktype == 276:
        etype, off = struct.unpack('>H', pkt[0:2])[0], 20
    elif linktype in (101, 228, 229):
        return 0
    elif linktype in (0, 108):
        fam = struct.unpack('<I' if linktype == 0 else '>I', pkt[0:4])[0]
        if fam not in (2, 24, 30):
            sys.exit('bad loopback family %d' % fam)
        return 4
    else:
        sys.exit('unexpected link type %d' % linktype)
    return off if etype in (0x0800, 0x86dd) else None


def tcp_of(linktype, pkt):
    off = ip_start(linktype, pkt)
    if off is None:
        return None
    if pkt[off] >> 4 == 4:
        proto = pkt[off + 9]
        src, dst = pkt[off + 12:off + 16], pkt[off + 16:off + 20]
        l4, end = off + (pkt[off] & 15) * 4, off + struct.unpack('>H', pkt[off + 2:off + 4])[0]
    else:
        proto = pkt[off + 6]
        src, dst = pkt[off + 8:off + 24], pkt[off + 24:off + 40]
        l4 = off + 40
        end = l4 + struct.unpack('>H', pkt[off + 4:off + 6])[0]
        while proto in (0, 60, 43):
            proto, l4 = pkt[l4], l4 + (pkt[l4 + 1] + 1) * 8
    if proto != 6:
        return None
    sport, dport, seq, ack, doff, flags = struct.unpack('>HHIIBB', pkt[l4:l4 + 14])
    return src, sport, dst, dport, seq, ack, flags, pkt[l4 + (doff >> 4) * 4:min(len(pkt), end)]


def name(ip, port):
    if len(ip) == 4:
        return '%d.%d.%d.%d:%d' % (tuple(ip) + (port,))
    return '[fd00::1:%x]:%d' % (struct.unpack('>H', ip[14:16])[0], port)


def main(capture, manifest):
    man = json.load(open(manifest))
    port, flows, packets = man['port'], {}, 0
    for linktype, pkt in records(capture):
        packets += 1
        seg = tcp_of(linktype, pkt)
        if seg is None:
            continue
        src, sport, dst, dport, seq, ack, flags, payload = seg
        if dport == port:
            flows.setdefault(name(src, sport), []).append((packets, True, seq, ack, flags, payload))
        elif sport == port:
            flows.setdefault(name(dst, dport), []).append((packets, False, seq, ack, flags, payload))
    if packets != man['totals']['packets']:
        sys.exit('capture has %d packets, manifest says %d' % (packets, man['totals']['packets']))
    if len(flows) != len(man['flows']) or man['totals']['flows'] != len(flows):
        sys.exit('capture has %d flows, manifest %d' % (len(flows), len(man['flows'])))
    total = gaps_total = 0
    for mf in man['flows']:
        who, events = mf['client'], flows.get(mf['client'])
        if events is None:
            sys.exit('%s: not in the capture' % who)
        syns = [ev for ev in events if ev[1] and ev[4] & 2]
        if (not syns) != mf['midstream']:
            sys.exit('%s: midstream should be %s' % (who, not syns))
        if syns:
            base = (syns[0][2] + 1) & 0xffffffff
        else:
            if not (events[0][1] and events[0][5]):
                sys.exit('%s: midstream flow does not start with client data' % who)
            base = events[0][2]
        size = mf['size']
        data, seen = bytearray(size), [None] * size
        end = end_kind = None
        last = 0
        for t, from_client, seq, ack, flags, payload in events:
            if not from_client:
                continue
            # Offsets unwrap incrementally, so flows may cross 2^32.
            delta = (seq - base - last) & 0xffffffff
            last += delta - (1 << 32) if delta >= 1 << 31 else delta
            off = 0 if flags & 2 else last
            if flags & 5:
                end, end_kind = off, 'rst' if flags & 4 else 'fin'
            for i, b in enumerate(payload):
                pos = off + i
                if not 0 <= pos < size:
                    sys.exit('%s: byte outside the stream' % who)
                if seen[pos] is None:
                    seen[pos], data[pos] = t, b
                elif data[pos] != b:
                    sys.exit('%s: a resent byte differs at offset %d' % (who, pos))
        if (end, end_kind) != (size, mf['end']):
            sys.exit('%s: ends %r, manifest says %d %s' % (who, (end, end_kind), size, mf['end']))
        delivered, gaps, gap_bytes, in_gap = bytearray(), 0, 0, False
        for pos in range(size):
            if seen[pos] is None:
                gaps += 0 if in_gap else 1
                gap_bytes += 1
                in_gap = True
            else:
                delivered.append(data[pos])
                in_gap = False
        got = (len(delivered), '%016x' % fnv1a(delivered), gaps, gap_bytes)
        want = (mf['bytes'], mf['fnv64'], mf['gaps'], mf['gap_bytes'])
        if got != want:
            sys.exit('%s: capture gives %r, manifest says %r' % (who, got, want))
        if mf['end'] == 'rst' and gaps:
            sys.exit('%s: a reset flow has gaps' % who)
        total += len(delivered)
        gaps_total += gaps
        latest, newest = [], 0
        for pos in range(size):
            newest = max(newest, seen[pos] or 0)
            latest.append(newest)
        for t, from_client, seq, ack, flags, payload in events:
            if from_client or not flags & 0x10 or flags & 2:
                continue
            covered = min((ack - base) & 0xffffffff, size)
            if covered and latest[covered - 1] > t:
                sys.exit('%s: server ACK in packet %d covers bytes captured later' % (who, t))
    if (total, gaps_total) != (man['totals']['bytes'], man['totals']['gaps']):
        sys.exit('totals do not add up')
    print('%d packets, %d flows, %d bytes, %d gaps' % (packets, len(flows), total, gaps_total))


main(sys.argv[1], sys.argv[2])
PYEOF

# name | tmgen arguments | tcpdump: "count" or "mixed-links"
CASES=(
    "default||count"
    "sll2|--link sll2|count"
    "ipv6-vlan|--ipv6 --link vlan|count"
    "pcapng-2if|--format pcapng --pcapng-interfaces 2|mixed-links"
    "impaired|--loss 5 --reorder 5 --retransmit 5 --flows 30 --size 32KiB --concurrency 8|count"
    "snaplen|--snaplen 200|count"
    "links|--link qinq --ip-options --tcp-options --other-traffic 50 --flows 20|count"
    "null-v6|--link null --ipv6 --ip-options --nanos|count"
    "loop|--link loop --big-endian --no-acks --rst 50|count"
    "raw-ipv4|--link ipv4 --format pcapng --nanos --big-endian --midstream 50|count"
    "sll-http|--link sll --payload http --response 5000 --tfo --isn-wrap|count"
    "everything|--ipv6 --ip-options --tcp-options --link sll2 --format pcapng --midstream 20 --rst 20 --tfo --isn-wrap --random-segments --other-traffic 30 --response 3000 --size-min 0 --size-max 30000 --concurrency 6 --flows 40 --loss 8 --reorder 8 --retransmit 15 --snaplen 400 --payload http --seed 7|count"
)

for case in "${CASES[@]}"; do
    IFS='|' read -r name args mode <<< "$case"
    cap="$WORK/$name.cap"
    manifest="$WORK/$name.json"
    # shellcheck disable=SC2086 # args is a word list on purpose
    "$TMGEN" -o "$cap" -m "$manifest" $args 2> "$WORK/tmgen.err" ||
        fail "$name: tmgen failed: $(cat "$WORK/tmgen.err")"
    want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["packets"])' "$manifest")

    rc=0
    "$TCPDUMP" -r "$cap" -nn > "$WORK/tcpdump.out" 2> "$WORK/tcpdump.err" || rc=$?
    if [[ $mode == mixed-links ]]; then
        # libpcap (through 1.10 at least) rejects pcapng files whose
        # interfaces have different link types; the Python reader covers it.
        if [[ $rc -ne 0 ]] && grep -q "different from the type of the first interface" "$WORK/tcpdump.err"; then
            echo "  note: $name: this libpcap cannot read mixed link types; parser check only"
        elif [[ $rc -ne 0 ]]; then
            fail "$name: tcpdump: $(tail -n 3 "$WORK/tcpdump.err")"
        fi
    else
        # SLL2 makes tcpdump warn that ifindex-to-name lookups use this host.
        if [[ $rc -ne 0 ]] ||
            grep -Ev '^reading from file|^Warning: interface names might be incorrect' \
                "$WORK/tcpdump.err" | grep -q .; then
            fail "$name: tcpdump complained: $(tail -n 3 "$WORK/tcpdump.err")"
        fi
        got=$(wc -l < "$WORK/tcpdump.out")
        if [[ $got -ne $want ]]; then
            tail -n 5 "$WORK/tcpdump.out" >&2
            fail "$name: tcpdump shows $got packets, manifest says $want"
        fi
        if grep -Eq 'truncated|bad (hdr|opt|len)|invalid|\[\|(ip|tcp|udp|arp)' "$WORK/tcpdump.out"; then
            grep -Em 3 'truncated|bad (hdr|opt|len)|invalid|\[\|(ip|tcp|udp|arp)' "$WORK/tcpdump.out" >&2
            fail "$name: tcpdump flags malformed packets"
        fi
        if "$TCPDUMP" -r "$cap" -nn -vv 2> /dev/null | grep -q 'incorrect'; then
            fail "$name: tcpdump reports a bad checksum"
        fi
    fi
    summary=$(python3 "$WORK/check_capture.py" "$cap" "$manifest") ||
        fail "$name: the capture does not match its manifest"
    echo "ok   tmgen $name: $summary"
done

# Determinism, stdout output, and option errors.
"$TMGEN" -o "$WORK/a.cap" --seed 5 --reorder 10 --concurrency 4 2> /dev/null
"$TMGEN" -o - --seed 5 --reorder 10 --concurrency 4 2> /dev/null > "$WORK/b.cap"
cmp -s "$WORK/a.cap" "$WORK/b.cap" || fail "tmgen is not deterministic for a fixed seed"
"$TMGEN" -o "$WORK/c.cap" --seed 6 --reorder 10 --concurrency 4 2> /dev/null
if cmp -s "$WORK/a.cap" "$WORK/c.cap"; then
    fail "tmgen ignores --seed"
fi
rc=0
"$TMGEN" -o "$WORK/x.cap" --no-such-option 2> /dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "tmgen: a bad option should exit 2, not $rc"
echo "ok   tmgen determinism and option errors"

# ---- tmsink ----

# Waits for the port file; tmsink writes it atomically after listening.
wait_for_port() {
    for _ in $(seq 100); do
        if [[ -s $1 ]]; then
            cat "$1"
            return 0
        fi
        sleep 0.05
    done
    fail "tmsink did not write $1"
}

cat > "$WORK/client.py" << 'PYEOF'
import json
import socket
import sys

FNV_OFFSET, FNV_PRIME, MASK64 = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


port, count, respond, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sent = []
for i in range(count):
    size = (0, 1, 1500, 200000)[i % 4] + i
    data = bytes((i * 31 + j * 7) & 0xff for j in range(size))
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    s.close()
    if got != respond:
        sys.exit('connection %d: got %d response bytes, expected %d' % (i, got, respond))
    sent.append({'bytes': size, 'fnv64': '%016x' % fnv1a(data)})
json.dump(sent, open(out, 'w'))
PYEOF

N=12
"$TMSINK" --expect "$N" --respond 70000 --port-file "$WORK/port" \
    --manifest "$WORK/sink.json" --timeout 30s --quiet > "$WORK/sink.out" &
SINK_PID=$!
port=$(wait_for_port "$WORK/port")
python3 "$WORK/client.py" "$port" "$N" 70000 "$WORK/sent.json" || fail "tmsink client failed"
rc=0
wait "$SINK_PID" || rc=$?
SINK_PID=
[[ $rc -eq 0 ]] || fail "tmsink --expect exited $rc"
grep -qx "listening on 127.0.0.1:$port" "$WORK/sink.out" ||
    fail "tmsink printed '$(cat "$WORK/sink.out")'"
python3 - "$WORK/sink.json" "$WORK/sent.json" << 'PYEOF' || fail "tmsink manifest does not match what was sent"
import json
import sys
sink, sent = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
got = [{'bytes': c['bytes'], 'fnv64': c['fnv64']} for c in sink['connections']]
if got != sent:
    sys.exit('tmsink recorded %r\nclient sent %r' % (got, sent))
if not all(c['complete'] for c in sink['connections']):
    sys.exit('a connection is not complete')
t = sink['totals']
if (t['connections'], t['complete'], t['bytes']) != (len(sent), len(sent), sum(s['bytes'] for s in sent)):
    sys.exit('bad totals %r' % t)
PYEOF
echo "ok   tmsink: $N connections match the client's own FNV-1a"

# --respond-after answers a request as a server would, before the
# client's EOF: the client reads the whole answer, then sends more and
# closes; nothing more comes back.
"$TMSINK" --expect 2 --respond 1500 --respond-after 600 \
    --port-file "$WORK/port-ra" --manifest "$WORK/sink-ra.json" --timeout 30s \
    --quiet > /dev/null &
SINK_PID=$!
port=$(wait_for_port "$WORK/port-ra")
python3 - "$port" << 'PYEOF' || fail "tmsink --respond-after did not answer before the EOF"
import socket
import sys
for first in (600, 1000):
    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
    s.settimeout(10)
    s.sendall(b'q' * first)
    got = 0
    while got < 1500:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit('EOF after %d response bytes' % got)
        got += len(chunk)
    if got != 1500:
        sys.exit('%d response bytes, expected 1500' % got)
    s.sendall(b'r' * 100)
    s.shutdown(socket.SHUT_WR)
    if s.recv(65536) != b'':
        sys.exit('more bytes after the answer')
    s.close()
PYEOF
rc=0
wait "$SINK_PID" || rc=$?
SINK_PID=
[[ $rc -eq 0 ]] || fail "tmsink --respond-after --expect exited $rc"
python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
got = [(c["bytes"], c["complete"]) for c in m["connections"]]
if got != [(700, True), (1100, True)]:
    sys.exit("tmsink recorded %r" % got)' "$WORK/sink-ra.json" ||
    fail "tmsink --respond-after manifest"
echo "ok   tmsink: --respond-after answers before the EOF and reads on"

# --timeout exits 3 and still writes the manifest; an open connection is
# not complete.
# The timeout leaves a loaded machine time to start the client.
"$TMSINK" --mode noread --timeout 3s --port-file "$WORK/port2" \
    --manifest "$WORK/sink2.json" --quiet > /dev/null &
SINK_PID=$!
port=$(wait_for_port "$WORK/port2")
python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x" * 1000)
time.sleep(5)' "$port" &
client=$!
rc=0
wait "$SINK_PID" || rc=$?
SINK_PID=
wait "$client" || true
[[ $rc -eq 3 ]] || fail "tmsink --timeout exited $rc, expected 3"
python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
assert m["totals"]["connections"] == 1 and m["totals"]["complete"] == 0, m' "$WORK/sink2.json" ||
    fail "tmsink --timeout manifest is wrong"
echo "ok   tmsink --timeout and --mode noread"

# SIGTERM exits 0; --idle-exit exits 0 once nothing is open.
"$TMSINK" --port-file "$WORK/port3" --quiet > /dev/null &
SINK_PID=$!
wait_for_port "$WORK/port3" > /dev/null
kill -TERM "$SINK_PID"
rc=0
wait "$SINK_PID" || rc=$?
SINK_PID=
[[ $rc -eq 0 ]] || fail "tmsink exited $rc on SIGTERM"
rc=0
"$TMSINK" --idle-exit 200ms --quiet > /dev/null || rc=$?
[[ $rc -eq 0 ]] || fail "tmsink --idle-exit exited $rc"
echo "ok   tmsink SIGTERM and --idle-exit"

echo "selftest: all passed"
