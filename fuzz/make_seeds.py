#!/usr/bin/env python3
"""Writes the fuzz seed corpora into fuzz/corpus/<target>/, deterministically.

    fuzz/make_seeds.py            (re)write the seeds
    fuzz/make_seeds.py --check    exit 1 if a committed seed differs

Only files named seed-* are written; crash reproducers (crash-*) and
inputs the fuzzer found (anything else) are left alone. Each target's
input format is documented at the top of its fuzz_<name>.c; the encoders
here follow those layouts.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from capbuild import (  # noqa: E402
    PCAP_MAGIC_MODIFIED, PCAP_MAGIC_NS, PCAP_MAGIC_US, T0_NS, be16, be32, block, epb, eth,
    frag_hdr, idb, ip4, ip6, ipv4, ipv6, null_be, null_le, opb, opts_hdr, pcap_header,
    pcap_record, shb, sll, sll2, spb, tcp)


def pcap(records, linktype, be=False, nanos=False, modified=False,
         snaplen=262144, version=(2, 4)):
    """A pcap file of (timestamp in ns, data, wire length) records."""
    magic = PCAP_MAGIC_MODIFIED if modified else (PCAP_MAGIC_NS if nanos else PCAP_MAGIC_US)
    out = pcap_header(linktype, snaplen, be, version, magic)
    for ts_ns, data, wirelen in records:
        out += pcap_record(data, ts_ns, wirelen=wirelen, be=be, nanos=nanos, modified=modified)
    return out


# A short HTTP-ish connection 10.0.0.1:40000 -> 10.0.0.100:8080.
C4, S4 = "10.0.0.1", "10.0.0.100"
C6, S6 = ip6(1), ip6(0x64)
T0 = T0_NS


def session(v6=False, isn=1000, data=(b"GET / HTTP/1.1\r\n\r\n",)):
    """(direction, tcp segment bytes) of a whole connection."""
    segs = [(0, tcp(40000, 8080, isn, 0, 0x02, opts=bytes([2, 4, 5, 0xB4])))]
    segs.append((1, tcp(8080, 40000, 5000, isn + 1, 0x12)))
    seq = isn + 1
    segs.append((0, tcp(40000, 8080, seq, 5001, 0x10)))
    for d in data:
        segs.append((0, tcp(40000, 8080, seq, 5001, 0x18, d)))
        seq += len(d)
        segs.append((1, tcp(8080, 40000, 5001, seq, 0x10)))
    segs.append((0, tcp(40000, 8080, seq, 5001, 0x11)))
    segs.append((1, tcp(8080, 40000, 5001, seq + 1, 0x11)))
    segs.append((0, tcp(40000, 8080, seq + 1, 5002, 0x10)))
    out = []
    for d, seg in segs:
        if v6:
            src, dst = (C6, S6) if d == 0 else (S6, C6)
            out.append(ipv6(src, dst, seg))
        else:
            src, dst = (C4, S4) if d == 0 else (S4, C4)
            out.append(ipv4(src, dst, seg))
    return out


def framed(ip_packets, link, v6=False):
    et = 0x86DD if v6 else 0x0800
    fam_bsd = 30 if v6 else 2
    out = []
    for p in ip_packets:
        if link == 1:
            out.append(eth(p, et))
        elif link == 113:
            out.append(sll(p, et))
        elif link == 276:
            out.append(sll2(p, et))
        elif link == 0:
            out.append(null_le(p, fam_bsd))
        elif link == 108:
            out.append(null_be(p, 24 if v6 else 2))
        else:  # 101, 228, 229
            out.append(p)
    return out


def recs(frames, step=1_000_000):
    return [(T0 + i * step, f, len(f)) for i, f in enumerate(frames)]


def capreader_seeds():
    s = {}
    v4 = session()
    v6 = session(v6=True)
    s["pcap-le-us-ethernet"] = pcap(recs(framed(v4, 1)), 1)
    s["pcap-be-ns-raw"] = pcap(recs(framed(v6, 101, True)), 101, be=True,
                               nanos=True)
    s["pcap-modified-sll"] = pcap(recs(framed(v4, 113)), 113, modified=True)
    s["pcap-be-modified-sll2"] = pcap(recs(framed(v4, 276)), 276, be=True,
                                      modified=True)
    s["pcap-null"] = pcap(recs(framed(v6, 0, True)), 0)
    s["pcap-loop"] = pcap(recs(framed(v4, 108)), 108, be=True)
    s["pcap-ipv4"] = pcap(recs(framed(v4, 228)), 228, nanos=True)
    s["pcap-ipv6"] = pcap(recs(framed(v6, 229, True)), 229)
    s["pcap-unsupported-link"] = pcap(recs(framed(v4, 101)), 147)
    s["pcap-fcs-bits"] = pcap(recs(framed(v4, 1)), 1 | 0x14000000)
    cut = [(T0, f[:64], len(f)) for f in framed(v4, 1)]
    s["pcap-snaplen-64-cut"] = pcap(cut, 1, snaplen=64)
    s["pcap-anomalies"] = pcap([(T0, framed(v4, 1)[3], 10)], 1, snaplen=40)
    s["pcap-truncated"] = pcap(recs(framed(v4, 1)), 1)[:-7]
    s["pcap-version-2-2"] = pcap(recs(framed(v4, 1))[:2], 1, version=(2, 2))

    f4 = framed(v4, 1)
    ng = shb() + idb(1, tsresol=9) + b"".join(
        epb(0, T0 + i, f) for i, f in enumerate(f4))
    s["pcapng-le-ethernet-ns"] = ng
    fb = framed(v6, 276, True)
    s["pcapng-be-sll2"] = shb(True) + idb(276, be=True) + b"".join(
        epb(0, T0 // 1000 + i, f, be=True) for i, f in enumerate(fb))
    fr = framed(v4, 101)
    two = shb() + idb(1) + idb(101, tsresol=0x80 | 20, tsoffset=100)
    for i in range(len(f4)):
        two += epb(i % 2, (T0 // 1000 + i) << 1, f4[i] if i % 2 == 0 else fr[i])
    s["pcapng-two-interfaces"] = two
    s["pcapng-simple-packets"] = shb() + idb(1, snaplen=128) + b"".join(
        spb(f) for f in f4[:4]) + spb(f4[4][:40], len(f4[4]))
    s["pcapng-obsolete-packets"] = shb() + idb(1, tsresol=3) + b"".join(
        opb(0, i, f) for i, f in enumerate(f4[:4]))
    s["pcapng-other-blocks"] = (shb() + block(4, be16(1) + be16(4) + ip4(C4)
                                              + b"host\0" + bytes(4))
                                + idb(1) + epb(0, 0, f4[0])
                                + block(5, be32(0) + bytes(8))
                                + block(0xBAD, b"custom")
                                + epb(0, 1, f4[1]))
    s["pcapng-two-sections"] = (shb() + idb(1) + epb(0, 5, f4[0])
                                + shb(True) + idb(101, be=True)
                                + epb(0, 6, fr[1], be=True))
    s["pcapng-tsresol-extremes"] = (shb() + idb(1, tsresol=0x80 | 63)
                                    + idb(1, tsresol=30) + idb(1, tsresol=0)
                                    + epb(0, 2**64 - 1, f4[0])
                                    + epb(1, 2**64 - 1, f4[1])
                                    + epb(2, 2**40, f4[2]))
    s["pcapng-truncated"] = ng[:-10]
    s["empty"] = b""
    return s


def decode_seeds():
    sel = {0: 0, 1: 1, 101: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}

    def d(link, pkt, extra=None):
        if extra is None:
            return bytes([sel.get(link, 12), 0]) + pkt
        return bytes([sel.get(link, 12), 1]) + be16(extra) + pkt

    t = tcp(40000, 8080, 1, 2, 0x18, b"hello")
    p4 = ipv4(C4, S4, t)
    p6 = ipv6(C6, S6, t)
    s = {}
    s["eth-ipv4-tcp"] = d(1, eth(p4, 0x0800))
    s["eth-ipv4-options"] = d(1, eth(ipv4(C4, S4, t, opts=bytes([1] * 8)), 0x0800))
    s["eth-qinq-vlan-ipv6"] = d(1, eth(p6, 0x86DD, [(0x88A8, 1), (0x8100, 2)]))
    s["eth-vlan-9-tags"] = d(1, eth(p4, 0x0800, [(0x8100, i) for i in range(9)]))
    s["eth-ipv6-ext-chain"] = d(1, eth(ipv6(C6, S6, t, nh=0, ext=opts_hdr(60)
                                            + opts_hdr(44, 1) + frag_hdr(6)),
                                       0x86DD))
    s["eth-ipv6-ah"] = d(1, eth(ipv6(C6, S6, t, nh=51,
                                     ext=bytes([6, 1]) + bytes(10)), 0x86DD))
    s["eth-ipv6-fragment"] = d(1, eth(ipv6(C6, S6, t, nh=44,
                                           ext=frag_hdr(6, 0x0009)), 0x86DD))
    s["eth-ipv4-fragment"] = d(1, eth(ipv4(C4, S4, t, frag=0x2000), 0x0800))
    s["eth-udp"] = d(1, eth(ipv4(C4, S4, bytes(12), proto=17), 0x0800))
    s["eth-arp"] = d(1, eth(bytes(28), 0x0806))
    s["eth-tso-zero-length"] = d(1, eth(ipv4(C4, S4, t, total=0), 0x0800))
    s["eth-cut"] = d(1, eth(p4, 0x0800)[:50], extra=len(eth(p4, 0x0800)) - 50)
    s["sll-ipv4"] = d(113, sll(p4, 0x0800))
    s["sll2-ipv6"] = d(276, sll2(p6, 0x86DD))
    s["sll2-vlan"] = d(276, be16(0x8100) + sll2(p4, 0x0800)[2:20]
                       + be16(5) + be16(0x0800) + p4)
    s["null-le-ipv4"] = d(0, null_le(p4, 2))
    s["null-be-ipv6"] = d(0, null_be(p6, 30))
    s["loop-ipv6"] = d(108, null_be(p6, 24))
    s["raw-ipv4"] = d(101, p4)
    s["raw-ipv6"] = d(101, p6)
    s["linktype-ipv4"] = d(228, p4)
    s["linktype-ipv6"] = d(229, p6)
    s["tcp-options"] = d(101, ipv4(C4, S4, tcp(1, 2, 3, 4, 2, b"x",
                                              opts=bytes([2, 4, 5, 0xB4]) + bytes([1] * 8))))
    s["unsupported-link"] = d(105, p4)
    return s


# ---------------------------------------------------------------- reasm


class ReasmScript:
    """Encoder for fuzz_reasm's input (see the layout in fuzz_reasm.c)."""

    def __init__(self, syn0=True, syn1=True, disagree=False, start=0,
                 isn=1000, cap=255, budget=0xFFFF):
        cfg = (1 if syn0 else 0) | (2 if syn1 else 0) | (4 if disagree else 0)
        cfg |= start << 3
        self.disagree = disagree
        self.b = bytes([cfg]) + be32(isn) + bytes([cap]) + be16(budget)

    def push(self, stream=0, rel=None, cont=None, ahead=None, seq=None,
             caplen=0, cut=0, fin=False, dt=1, data=b""):
        if rel is not None:
            variant, arg = 0, struct.pack(">h", rel)
        elif cont is not None:
            variant, arg = 1, struct.pack(">b", cont)
        elif ahead is not None:
            variant, arg = 2, be16(ahead)
        else:
            variant, arg = 3, be32(seq)
        flags = (1 if fin else 0) | (2 if cut else 0) | (8 if caplen > 255 else 0)
        self.b += bytes([0 | (stream << 3) | (variant << 4)]) + arg + bytes([flags])
        self.b += be16(caplen) if caplen > 255 else bytes([caplen])
        if cut:
            self.b += bytes([cut])
        self.b += bytes([dt])
        if self.disagree:
            self.b += (data * (caplen // max(1, len(data)) + 1))[:caplen]
        return self

    def ack(self, stream=0, rel=0):
        self.b += bytes([3 | (stream << 3)]) + struct.pack(">h", rel)
        return self

    def skip_due(self, stream=0, later=0, gap=10, rtx=10):
        self.b += bytes([4 | (stream << 3), later, gap, rtx])
        return self

    def skip_all(self, stream=0):
        self.b += bytes([5 | (stream << 3)])
        return self

    def wait(self, ms):
        self.b += bytes([6]) + be16(ms)
        return self

    def discard(self, stream=0, restart=None):
        if restart is None:
            self.b += bytes([7 | (stream << 3)])
        else:
            syn, seq = restart
            self.b += bytes([7 | (stream << 3) | (3 << 4), 1 if syn else 0]) + be32(seq)
        return self


def reasm_seeds():
    s = {}
    r = ReasmScript()
    for _ in range(5):
        r.push(cont=0, caplen=100)
    r.push(cont=0, fin=True)
    s["in-order-fin"] = r.b
    r = ReasmScript(syn0=False)
    for k in (4, 3, 2, 1, 0):
        r.push(ahead=k * 50, caplen=50)
    s["reversed"] = r.b
    r = ReasmScript(disagree=True)
    r.push(ahead=10, caplen=30, data=b"A").push(ahead=0, caplen=60, data=b"B")
    r.push(ahead=5, caplen=40, data=b"C").push(rel=-10, caplen=80, data=b"D")
    s["overlaps-first-copy-wins"] = r.b
    r = ReasmScript()
    r.push(ahead=100, caplen=50).ack(rel=100).skip_due(later=5, gap=1)
    r.push(ahead=300, caplen=50).wait(5000).skip_due(later=0, gap=10, rtx=200)
    r.push(rel=-1, caplen=200, fin=True)
    s["holes-acks-skips"] = r.b
    r = ReasmScript()
    r.push(cont=0, caplen=40, cut=60).push(cont=0, caplen=40).push(ahead=500, caplen=10, cut=200)
    r.skip_all()
    s["cut-segments"] = r.b
    r = ReasmScript(start=1, isn=0xF0)
    for _ in range(6):
        r.push(cont=0, caplen=200)
    r.push(cont=0, fin=True)
    s["sequence-wrap"] = r.b
    r = ReasmScript(cap=1, budget=300)
    for k in range(8):
        r.push(stream=k % 2, ahead=100 + 40 * k, caplen=30)
    s["tiny-budget-two-streams"] = r.b
    r = ReasmScript()
    r.push(ahead=100, caplen=50).discard(restart=(False, 7777)).push(cont=0, caplen=10)
    r.push(ahead=20, caplen=10).discard()
    s["discard-restart"] = r.b
    r = ReasmScript(syn0=False)
    r.push(seq=0x80000000, caplen=10).push(seq=0x7FFFFFF0, caplen=10).push(ahead=0xFFFF, caplen=200)
    s["far-jumps"] = r.b
    return s


# ---------------------------------------------------------------- engine


class EngineScript:
    """Encoder for fuzz_engine's input (see the layout in fuzz_engine.c)."""

    LINKS = {"eth": 0, "sll": 2, "sll2": 3, "raw": 4, "null": 5, "loop": 6,
             "ip": 7}

    def __init__(self, guess=False, service_addrs=0, keep=True, idle=False,
                 no_finish=False, max_flows=16, skip_loopback=False,
                 cap=60000, budget=60000, gap=50, rtx=20, server=False):
        c0 = (3 if guess else 0) | (4 if service_addrs else 0)
        c0 |= 32 if service_addrs == 2 else 0
        c0 |= (8 if keep else 0) | (16 if idle else 0) | (64 if no_finish else 0)
        c0 |= 128 if max_flows > 16 else 0
        c1 = ((max_flows - 1) & 15) | (16 if skip_loopback else 0)
        c1 |= 128 if server else 0  # reasm_server: the server's stream too
        self.b = bytes([c0, c1]) + be16(cap) + be16(budget // 4) + bytes([gap, rtx])

    def frame(self, client=0, v6=False, server=False, link="eth", flags=0x10,
              seq_mode=0, seq_arg=0, other_port=False, ext=False, tags=0,
              tso=False, ack_off=0, plen=0, cut=0, dt=1, op=0):
        who = client | (8 if v6 else 0) | (16 if server else 0)
        who |= self.LINKS[link] << 5
        mode = seq_mode | (4 if other_port else 0) | (8 if ext else 0)
        mode |= (tags << 4) | (0x40 if tso else 0) | (0x80 if plen > 255 else 0)
        b = bytes([op, who, flags, mode])
        if seq_mode == 1:
            b += struct.pack(">h", seq_arg)
        elif seq_mode == 2:
            b += be32(seq_arg)
        elif seq_mode == 3:
            b += bytes([seq_arg])
        b += struct.pack(">h", ack_off)
        b += be16(plen) if plen > 255 else bytes([plen])
        b += bytes([cut, dt])
        self.b += b
        return self

    def wait(self, ms):
        self.b += bytes([4]) + be16(ms)
        return self

    def raw(self, link_index, data):
        self.b += bytes([5, link_index]) + be16(len(data)) + data
        return self

    def connection(self, client=0, v6=False, link="eth", sizes=(100,),
                   **kw):
        self.frame(client, v6, False, link, 0x02, **kw)            # SYN
        self.frame(client, v6, True, link, 0x12, **kw)             # SYN-ACK
        self.frame(client, v6, False, link, 0x10, **kw)            # ACK
        for n in sizes:
            self.frame(client, v6, False, link, 0x18, plen=n, **kw)
            self.frame(client, v6, True, link, 0x10, **kw)
        self.frame(client, v6, False, link, 0x11, **kw)            # FIN
        self.frame(client, v6, True, link, 0x11, **kw)
        self.frame(client, v6, False, link, 0x10, **kw)
        return self


def engine_seeds():
    s = {}
    s["one-connection"] = EngineScript().connection(sizes=(100, 200, 5)).b
    e = EngineScript()
    for i, link in enumerate(("eth", "sll", "sll2", "raw", "null", "loop", "ip")):
        e.connection(client=i, v6=i % 2 == 1, link=link, sizes=(30, 40))
    s["every-link-type"] = e.b
    e = EngineScript()
    e.frame(0, flags=0x02)
    e.frame(0, flags=0x18, seq_mode=1, seq_arg=100, plen=50)   # ahead: a hole
    e.frame(0, flags=0x18, seq_mode=1, seq_arg=200, plen=50)
    e.frame(0, server=True, flags=0x10, ack_off=300)           # server saw it
    e.wait(100).wait(5000)
    e.frame(0, flags=0x18, seq_mode=3, seq_arg=200, plen=250)  # late copy
    e.frame(0, flags=0x11)
    s["holes-and-acks"] = e.b
    e = EngineScript(max_flows=4)
    for i in range(8):
        e.frame(i, flags=0x02).frame(i, flags=0x18, plen=20)
    s["eviction"] = e.b
    e = EngineScript(guess=True, keep=False)
    e.connection(client=3, sizes=(10,)).frame(4, server=True, flags=0x18, plen=30)
    s["guess-direction"] = e.b
    e = EngineScript(idle=True)
    e.frame(1, flags=0x18, plen=40).frame(1, flags=0x04).frame(2, flags=0x18, plen=9)
    e.frame(2, server=True, flags=0x14).frame(5, flags=0x18, plen=3, cut=2)
    e.wait(60000)
    s["reset-and-idle"] = e.b
    e = EngineScript(service_addrs=2, skip_loopback=True)
    e.connection(client=7, sizes=(10,)).connection(client=1, v6=True, link="sll2",
                                                   ext=True, tags=2, sizes=(20,))
    e.connection(client=2, tso=True, sizes=(1000,))
    s["service-addrs-loopback-vlan-ext"] = e.b
    e = EngineScript(cap=64, budget=400)
    e.frame(0, flags=0x02)
    for k in range(1, 12):
        e.frame(0, flags=0x18, seq_mode=1, seq_arg=k * 100, plen=60)
    s["tiny-queue-caps"] = e.b
    e = EngineScript()
    e.connection(client=0, sizes=(50,))
    e.raw(0, eth(ipv4(C4, S4, tcp(40000, 8080, 5, 6, 0x18, b"zz")), 0x0800)[:40])
    e.frame(0, flags=0x02, seq_mode=2, seq_arg=0x12345678)  # new SYN, new ISN
    s["raw-and-reuse"] = e.b
    # The server's direction reassembled (--compare): answers in order,
    # out of order, retransmitted, behind a hole the client acknowledged.
    e = EngineScript(server=True)
    e.connection(client=0, sizes=(100, 20))
    e.frame(1, flags=0x02).frame(1, server=True, flags=0x12)
    e.frame(1, flags=0x18, plen=30)
    e.frame(1, server=True, flags=0x18, seq_mode=1, seq_arg=80, plen=40)
    e.frame(1, server=True, flags=0x18, plen=40)
    e.frame(1, server=True, flags=0x18, seq_mode=1, seq_arg=-20, plen=40)
    e.frame(1, flags=0x10, ack_off=200)
    e.wait(100)
    e.frame(1, server=True, flags=0x11).frame(1, flags=0x11)
    s["server-stream"] = e.b
    return s


# ---------------------------------------------------------------- cli, parse


def cli_seeds():
    lines = {
        "replay": "replay x.pcap -p 8080 --to :8080",
        "replay-all": ("replay - -p 80 --to [::1]:80 --to 127.0.0.1:81 -o out.pcap "
                       "--stats-json s.json -q --pace 2x --gap-timeout 1.5s "
                       "--retransmit-wait 3s --idle-timeout 5m --retry-window 10s "
                       "--connect-timeout 3s --write-timeout 30s --linger 2s "
                       "--drain-timeout 10s --max-buffer 256MiB --flow-buffer 16MiB "
                       "--max-flows 100 --max-connections 10 --service-ip 10.0.0.1 "
                       "--service-ip ::1 -f tcp -v"),
        "capture": ("capture -i eth0 -p 8080 --to :9000 --snaplen 65535 "
                    "--kernel-buffer 64MiB --promisc -o -"),
        "summary": "summary x.pcap --json --flows 0 -p 80",
        "mirror": ("mirror deployment/web -p 8080 --to :8080 -n default -c app "
                   "--context ctx --kubeconfig k --kubectl /bin/kubectl "
                   "--tap-image img:1 --tap-timeout 30s --all-pods"),
        "mirror-pod": "mirror pod/web-0 -p 80",
        "help": "--help",
        "command-help": "replay --help",
        "version": "-V",
        "bad-port": "replay x -p 0 --to :1",
        "unknown-option": "replay x -p 8080 --to :80 --bogus",
        "missing-value": "replay x --to",
        "short-cluster": "summary x -qvp80",
        "equals": "replay x --port=8080 --to=:80 --pace=realtime",
        "double-dash": "replay -p 8080 --to :80 -- -",
        "output-is-input": "replay a.pcap -p 1 --to :1 -o a.pcap",
    }
    return {k: v.replace(" ", "\0").encode() for k, v in lines.items()}


def parse_seeds():
    words = ["8080", "65535", "00080", "65536", "0", "1.5s", "500ms", "2m",
             "1.5h", "250us", "10ns", "64KiB", "256MiB", "1GiB", "1.5GB", "12k",
             "fast", "realtime", "2x", "0.5x", "0.001x", "1000000x",
             "[::1]:8080", ":80", "localhost:8080", "a-b_c.d:1", "10.0.0.1",
             "fe80::1%eth0", "::ffff:1.2.3.4", "-1", "1e3", " 80",
             "18446744074s", "99999999999999999999", "1.", ".5s"]
    return {f"{i:02d}": w.encode() for i, w in enumerate(words)}


def kubejson_seeds():
    """Seeds for fuzz_kubejson: kubectl JSON documents and standard error."""
    docs = {
        "version": '{"clientVersion":{"major":"1","minor":"29"},'
                   '"serverVersion":{"major":"1","minor":"28+"}}',
        "deployment": '{"metadata":{"name":"web","namespace":"default",'
                      '"annotations":{"kubectl.kubernetes.io/default-container":"app"}},'
                      '"spec":{"selector":{"matchLabels":{"app":"web","tier":"fe"},'
                      '"matchExpressions":[{"key":"env","operator":"In","values":["a","b"]}]},'
                      '"template":{"spec":{"containers":[{"name":"app"},{"name":"side"}]}}}}',
        "pod": '{"metadata":{"name":"web-0","namespace":"default","uid":"u-1",'
               '"resourceVersion":"42"},"spec":{"hostNetwork":false,'
               '"containers":[{"name":"app"}],"ephemeralContainers":[{"name":"tapmirror-tap",'
               '"image":"img:1","targetContainerName":"app"}]},"status":{"phase":"Running",'
               '"podIPs":[{"ip":"10.1.2.3"},{"ip":"fd00::3"}],"conditions":[{"type":"Ready",'
               '"status":"True"}],"ephemeralContainerStatuses":[{"name":"tapmirror-tap",'
               '"state":{"terminated":{"reason":"Error","message":"tcpdump: not found",'
               '"exitCode":127}}}]}}',
        "pod-list": '{"kind":"PodList","items":[{"metadata":{"name":"a"},"spec":{"containers":'
                    '[{"name":"c"}]},"status":{"phase":"Pending"}},{"metadata":{"name":"b",'
                    '"deletionTimestamp":"x"},"spec":{"containers":[]},"status":{}}]}',
        "stderr-forbidden": 'Error from server (Forbidden): pods "web-0" is forbidden: User '
                            '"u" cannot patch resource "pods/ephemeralcontainers" in API group ""'
                            ' in the namespace "default"\n',
        "not-json": "error: context \"nope\" does not exist\n",
        # terminal sequences from the cluster: in tcpdump's error after its
        # banner, in the text kube_classify quotes, in a pod's name, phase,
        # tap image and status message
        "stderr-tcpdump-escapes": b'tcpdump: listening on any, link-type LINUX_SLL2\n'
                                  b'tcpdump: Couldn\'t change to \x1b]0;owned\x07 \x9b2J\n'
                                  b'command terminated with exit code 1\n',
        "stderr-forbidden-escapes": b'Error from server (Forbidden): pods "w" is forbidden: User '
                                    b'"\x1b[2Jme\xc2\x9b" cannot \x1b[8mget resource '
                                    b'"pods/exec\x07" in API group "\xe2\x80\xae\xed\xa0\x80" '
                                    b'in the namespace "default"\n',
        "pod-list-escapes": '{"items":[{"metadata":{"name":"web-\\u001b]0;owned\\u0007"},'
                            '"spec":{"containers":[{"name":"c"}]}},{"metadata":{"name":"ok"},'
                            '"spec":{"containers":[{"name":"c"}],"ephemeralContainers":'
                            '[{"name":"tapmirror-tap","image":"img\\u001b[2J\\u009b"}]},'
                            '"status":{"phase":"Run\\u0007ning","ephemeralContainerStatuses":'
                            '[{"name":"tapmirror-tap","state":{"waiting":{"reason":"E\\u0085",'
                            '"message":"\\u202e\\u001b[8mhidden"}}}]}}]}',
        # a node name that would be a flag of `kubectl get node NAME`, a
        # default container that is a terminal sequence
        "pod-names-flags": '{"metadata":{"name":"web-0","annotations":'
                           '{"kubectl.kubernetes.io/default-container":"\\u001b]0;x\\u0007"}},'
                           '"spec":{"nodeName":"--raw=/api","containers":[{"name":"c"}]},'
                           '"status":{"phase":"Running"}}',
    }
    return {k: v if isinstance(v, bytes) else v.encode() for k, v in docs.items()}


# ---------------------------------------------------------------- pktseen
def pktseen_seeds():
    """Scripts for fuzz_pktseen (layout in fuzz_pktseen.c): op byte
    (kind | packet << 2), length byte."""
    def op(kind, packet, length):
        return bytes([kind | (packet << 2), length])
    adds = b"".join(op(0, n, 60) for n in range(40))
    takes = b"".join(op(2, n, 60) for n in range(0, 40, 3))
    dup = op(1, 5, 54) * 3 + op(2, 5, 54) * 4 + op(2, 5, 55)
    return {
        # many packets with a large limit: the table grows
        "grow": bytes([255]) + adds + takes + adds,
        # a limit of 4: adds beyond it fail until a take makes room
        "limit": bytes([3]) + adds[:16] + op(2, 1, 60) + op(0, 30, 60)
                 + op(0, 31, 60),
        # identical packets, counted; clear in the middle
        "dup": bytes([15]) + dup + op(3, 0, 0) + dup + op(0, 0, 0)
               + op(2, 9, 0),
    }


# ---------------------------------------------------------------- http
HTTP_REQUESTS = {
    "pipelined": b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                 b"Accept-Encoding: identity\r\nContent-Length: 21\r\n"
                 b"Content-Type: application/json\r\n\r\n"
                 b'{"sku": "a1", "n": 2}'
                 b"GET /api/orders/42?expand=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                 b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n"
                 b"Authorization: Bearer abc\r\nCookie: sid=1\r\n\r\n",
    "chunked": b"PUT /upload HTTP/1.1\r\nHost: localhost\r\n"
               b"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
               b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\n"
               b"X-Checksum: abc\r\n\r\n\r\nDELETE /upload/1 HTTP/1.1\r\n"
               b"Host: localhost\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "upgrade": b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n\x81\x85\x37\xfa",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03",
    "gap": b"tail of a body\r\nGET / HTTP/1.1\r\nno colon\r\n\r\n"
           b"GET /x HTTP/1.0\r\nX-Folded: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
}
HTTP_RESPONSES = {
    "head-get": b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 615\r\n"
                b"Connection: keep-alive\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                b"Content-Length: 2\r\n\r\n{}HTTP/1.1 204 No Content\r\n"
                b"Content-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
               b"Set-Cookie: sid=1\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    "close": b"HTTP/1.0 200 OK\r\nContent-type: text/plain\r\n\r\nall until the FIN",
    "switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\n\r\n\x81\x05hello",
}


def http1_seeds():
    """Seeds for fuzz_http1 (layout in fuzz_http1.c): flags, seed, stream."""
    out = {}
    for i, (name, data) in enumerate(sorted(HTTP_REQUESTS.items())):
        out["req-" + name] = bytes([(i % 4) << 1, i]) + data
    for i, (name, data) in enumerate(sorted(HTTP_RESPONSES.items())):
        # the first method: GET for all but head-get (HEAD)
        first = 1 if name == "head-get" else 0
        out["resp-" + name] = bytes([1 | first << 1, i]) + data
    out["req-small-head"] = bytes([3 << 3, 7]) + HTTP_REQUESTS["pipelined"]
    return out


def httpturn_seeds():
    """Seeds for fuzz_httpturn (layout in fuzz_httpturn.c): a seed, then
    steps of the client's or the target's bytes."""
    def step(data, target=False, end=False):
        n = len(data)
        return bytes([(n >> 8) << 2 | (2 if end else 0) | (1 if target else 0),
                      n & 0xff]) + data

    get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    post = (b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 4\r\n\r\n")
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    return {
        "keepalive": bytes([1]) + step(get) + step(ok, True) + step(get) +
                     step(ok[:20], True) + step(ok[20:], True),
        "head-204-304": bytes([2]) + step(b"HEAD /h HTTP/1.1\r\n\r\n") +
                        step(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                             True) +
                        step(get) + step(b"HTTP/1.1 204 No Content\r\n\r\n",
                                         True) +
                        step(get) +
                        step(b"HTTP/1.1 304 Not Modified\r\n\r\n", True),
        "continue-waited": bytes([3]) + step(post) + step(cont, True) +
                           step(b"body") + step(ok, True),
        "continue-pipelined": bytes([4]) + step(post + b"body") +
                              step(cont + ok, True),
        "close-delimited": bytes([5]) + step(b"GET / HTTP/1.0\r\n\r\n") +
                           step(b"HTTP/1.0 200 OK\r\n\r\nrest", True, True),
        "not-http": bytes([6]) + step(b"\0\0\0\x08\x04\xd2\x16\x2f") +
                    step(b"N", True),
        "greeting": bytes([7]) + step(b"220 hi\r\n", True) + step(get),
    }


def httpbody_seeds():
    """Seeds for fuzz_httpbody (layout in fuzz_httpbody.c)."""
    import zlib
    text = b'{"items":[{"id":1,"price":12.5}],"note":"' + b"z" * 300 + b'"}'

    def deflate(data, wbits):
        c = zlib.compressobj(9, zlib.DEFLATED, wbits, 9)
        return c.compress(data) + c.flush()

    br = bytes.fromhex("8b1a807b226974656d73223a5b7b226964223a312c22707269636522"
                       "3a31322e357d5d2c226e6f7465223a2262726f746c692073656564227d03")
    bomb = deflate(b"\0" * 200000, 31)
    return {
        "identity": bytes([0, 1, 1, 0]) + text,
        "gzip": bytes([1, 2, 1, 1]) + deflate(text, 31),
        "gzip-two-members": bytes([1, 2, 1, 2]) + deflate(text, 31) + deflate(text, 31),
        "deflate-zlib": bytes([2, 2, 1, 3]) + deflate(text, 15),
        "deflate-raw": bytes([2, 2, 1, 4]) + deflate(text, -15),
        "br": bytes([3, 2, 1, 5]) + br,
        "bomb": bytes([1, 0, 3, 6]) + bomb,
        "cut": bytes([1, 2, 1, 7]) + deflate(text, 31)[:-9],
    }


def jsondiff_seeds():
    """Seeds for fuzz_jsondiff: a NUL b NUL patterns."""
    def s(a, b, pats=None):
        out = a.encode() + b"\0" + b.encode()
        if pats is not None:
            out += b"\0" + "\n".join(pats).encode()
        return out
    return {
        "same": s('{"a":12.5,"b":[1,2]}', '{"b":[1.0,2],"a":12.50}'),
        "items": s('{"items":[{"id":1,"price":12.5},{"id":2}],"x-y":"a"}',
                   '{"items":[{"id":9,"price":12.75}],"x-y":"b","n":null}',
                   ["$.items[*].id", '$["x-y"]', "$.a.*", "$[", "bad"]),
        "types": s('[true,false,null,"1",1,{},[]]', '[false,true,0,1,"1",[],{}]'),
        "dup-keys": s('{"a":1,"a":2,"b":{"c":[1,{"d":2}]}}', '{"a":2,"a":1}', ["$.b.c[1].d"]),
        "not-json": s("<html>", "{}"),
    }


# ---------------------------------------------------------------- textsafe
def textsafe_seeds():
    """Inputs for fuzz_textsafe: an output-size byte, then text."""
    return {
        # terminal sequences: clear screen, window title, hidden text, C1 CSI
        "escapes": bytes([255]) + b"\x1b[2J\x1b]0;owned\x07\x1b[8mhidden\xc2\x9b31m\x9b\t\r\n\x7f\x00",
        # valid UTF-8 of every length, reordering characters, a backslash
        "utf8": bytes([255]) + "café € 🐳 \u202e\u2028\u2067\u061c a\\b".encode(),
        # ill-formed: stray, cut, overlong, surrogate, past U+10FFFF
        "invalid": bytes([255]) + b"\x80\xc3 \xe2\x82x\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xf4\x90\x80\x80\xfe\xff\xc3",
        # a short buffer that ends inside an escape and a character
        "short": bytes([9]) + "ab\x1bcd€€€".encode(),
    }


# ---------------------------------------------------------------- compare
def compare_seeds():
    """Seeds for fuzz_compare (layout in fuzz_compare.c): flags, seed, gap
    offset and length, client and production lengths, three streams."""
    import zlib

    def case(client, prod, local, flags=0, seed=1, gap_at=0, gap_len=1):
        return (bytes([flags, seed]) + gap_at.to_bytes(2, "big") +
                bytes([gap_len - 1]) + len(client).to_bytes(2, "big") +
                len(prod).to_bytes(2, "big") + client + prod + local)

    def resp(body, extra=b"", status=b"200 OK"):
        return (b"HTTP/1.1 " + status + b"\r\n" + extra +
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" +
                body)

    js = b"application/json"
    ct = b"Content-Type: " + js + b"\r\n"
    get = b"GET /items/42 HTTP/1.1\r\nHost: a\r\n\r\n"
    c = zlib.compressobj(9, zlib.DEFLATED, 31, 9)
    doc = b'{"items":[{"id":1,"price":12.5}],"ts":1}'
    gz = c.compress(doc) + c.flush()
    chunked = (b"HTTP/1.1 200 OK\r\n" + ct +
               b"Transfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(doc) + doc + b"\r\n0\r\nX-T: 1\r\n\r\n")
    pipelined = get + b"HEAD /f HTTP/1.1\r\n\r\n" + \
        b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab"
    pipe_resp = (resp(b"a") + b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" +
                 b"HTTP/1.1 100 Continue\r\n\r\n" + resp(b"ok"))
    return {
        "same": case(get, resp(b"hello"), resp(b"hello")),
        "json-differs": case(get, resp(doc, ct), resp(doc.replace(b"12.5", b"12.75"), ct)),
        "gzip-vs-chunked": case(get, resp(gz, ct + b"Content-Encoding: gzip\r\n"),
                                chunked, flags=1),
        "noise": case(get * 3, resp(b'{"ts":1}', ct) + resp(b'{"ts":2}', ct) +
                      resp(b'{"ts":3}', ct),
                      resp(b'{"ts":4}', ct) * 3, flags=1),
        "pipelined": case(pipelined, pipe_resp, pipe_resp.replace(b"ok", b"ko")),
        "gap-in-body": case(get * 2, resp(b"0123456789") + resp(b"x"),
                            resp(b"0123456789") + resp(b"x"),
                            flags=2 << 4, gap_at=45, gap_len=3),
        "gap-in-request": case(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde" + get,
                               resp(b"1") + resp(b"2"), resp(b"1") + resp(b"2"),
                               flags=1 << 4, gap_at=40, gap_len=2),
        "small-limits": case(get * 5, resp(doc, ct) * 5, resp(doc, ct) * 5,
                             flags=8 | 2),
        "redis": case(b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n", b"+PONG\r\n!"),
        "upgrade": case(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n\r\n\x81\x00",
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00",
                        resp(b"no")),
        "close-delimited": case(b"GET / HTTP/1.0\r\n\r\n",
                                b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
                                b"HTTP/1.0 200 OK\r\n\r\nuntil the End",
                                flags=3 << 4, gap_at=25, gap_len=4),
    }


# ---------------------------------------------------------------- diffreport
def diffreport_seeds():
    """Seeds for fuzz_diffreport (layout in fuzz_diffreport.c): flags, then
    NUL-separated parts: a report and exchanges (JSON mode), or strings
    (raw mode, flag bit 3)."""
    import json

    def j(o):
        return json.dumps(o, separators=(",", ":")).encode()

    evil = "</script><script>alert(1)</script><img src=x onerror=\"a()\">'&amp;"
    report = {
        "exchanges": 4, "same": 1, "differ": 2, "not_comparable": 1,
        "same_but_noise": 0, "not_comparable_by_reason": {"gap": 1},
        "connections": 2, "connections_stopped": 0,
        "connections_by_protocol": {"http/1.1": 2},
        "endpoints": [
            {"endpoint": "GET /users/{id}", "exchanges": 3, "same": 1,
             "differ": 1, "not_comparable": 1, "same_but_noise": 0,
             "top_differing_fields": [{"field": "$.price", "exchanges": 1}],
             "latency_ms": {"production": {"count": 3, "p50": 1.2, "p99": 2.0},
                            "local": {"count": 2, "p50": 1.5, "p99": 4.1}}},
            {"endpoint": "POST /o" + evil, "exchanges": 1, "same": 0,
             "differ": 1, "not_comparable": 0,
             "top_differing_fields": [{"field": "header x-" + evil,
                                       "exchanges": 1}],
             "latency_ms": {"production": {"count": 0},
                            "local": {"count": 1, "p50": 0.5, "p99": 0.5}}},
        ],
        "noise_fields": [{"endpoint": "GET /users/{id}", "field": "$.ts"}],
    }
    differ = {
        "connection": 1, "exchange": 2, "protocol": "http/1.1",
        "outcome": "differ", "request": "GET /users/44?x=1",
        "endpoint": "GET /users/{id}",
        "status": {"production": 200, "local": 200},
        "latency_ms": {"production": 2.0, "local": 4.0},
        "differences": [
            {"kind": "header", "field": "header x-version",
             "line": 'x-version: "1" -> "2"'},
            {"kind": "json", "field": "$.items[*].p",
             "line": "$.items[1].p: 2 -> 3"},
            {"kind": "json", "field": "$.ts", "line": "$.ts: 1 -> 2",
             "noise": True}],
        "differences_not_shown": 2,
        "body": {"production": {"size": 40, "text": '{"items":[{"p":1},{"p":2}],"ts":1}',
                                "cut": False},
                 "local": {"size": 40, "text": '{"items":[{"p":1},{"p":3}],"ts":2}',
                           "cut": False}},
        "headers": {"production": [{"name": "X-Version", "value": "1"}],
                    "local": [{"name": "X-Version", "value": "2"}]},
    }
    nc = {
        "connection": 2, "exchange": 0, "protocol": "http/1.1",
        "outcome": "not_comparable", "reason": "gap",
        "detail": "79 bytes of production's response missing",
        "request": "POST /o" + evil, "endpoint": "POST /o" + evil,
        "status": {"production": None, "local": 500},
        "latency_ms": {"production": None, "local": 0.5},
        "differences": [],
        "body": {"local": {"size": 3, "base64": "AAEC", "cut": True}},
    }
    same = dict(differ, outcome="same", differences=[], exchange=0)
    raw = [b"GET /" + evil.encode(), b"\xff\xfe\x1b[2J\xc2\x85",
           "\u202e evil \u2066".encode(), b"header x-a", b"X-A",
           b"a\x01b\r\nc\td", b"{\"k\":[1,2]}", b"AAEC", b"$.price"]
    return {
        "json": bytes([0]) + b"\0".join([j(report), j(differ), j(nc), j(same),
                                         j(same)]),
        "json-small-page": bytes([4 | 1]) + b"\0".join(
            [j(report)] + [j(differ)] * 12),
        "json-not-json": bytes([3]) + b"\0".join([b"[1,2", b"{}", b"7",
                                                  j({"outcome": evil})]),
        "raw": bytes([8 | 2]) + b"\0".join(raw),
        "raw-small-page": bytes([8 | 4 | 3]) + b"\0".join(raw[::-1]),
    }


def httpflow_seeds():
    """Seeds for fuzz_httpflow (layout in fuzz_httpflow.c): options, seed,
    a client stream where each GAP marks a capture gap."""
    gap = b"\xffG\xff"
    get = b"GET /api/users/1?full=1 HTTP/1.1\r\nHost: shop.example\r\n" \
          b"User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
    post = b"POST /api/orders HTTP/1.1\r\nHost: shop.example\r\n" \
           b"Content-Type: application/json\r\nContent-Length: 23\r\n\r\n" \
           b'{"item":"book","qty":2}'
    put = b"PUT /x/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n" \
          b"Expect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    py = b"DELETE /api/users/7 HTTP/1.1\r\nHost: localhost:8080\r\n" \
         b"Accept-Encoding: identity\r\nAuthorization: Bearer s3cr3t\r\n" \
         b"X-Api-Key: k1\r\nContent-Length: 0\r\n\r\n"
    stream = get + post + put + py + get
    out = {
        "identity": bytes([0, 1]) + stream,
        "filters": bytes([1, 2]) + stream,
        "rewrite-redact": bytes([2 | 4, 3]) + stream,
        "all": bytes([0x3f, 4]) + stream,
        "gap-line": bytes([0, 5]) + get + py[:9] + gap + py[9:] + get,
        "gap-headers": bytes([1, 6]) + get + py[:50] + gap + py[50:] + get,
        "gap-body": bytes([2, 7]) + get + put[:90] + gap + put[90:] + get,
        "gap-splice": bytes([8, 8]) + get + post[:100] + gap + post[100:] + get,
        "small-head-resync": bytes([0x40 | 1, 9]) + get + gap + b"x" * 300 +
                             b"\r\n" + get,
        "not-http": bytes([1, 10]) + b"\x16\x03\x01\x00\xa5\x01\x00" + get,
        "upgrade": bytes([2, 11]) + b"GET /ws HTTP/1.1\r\nHost: a\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85",
        "close-then-more": bytes([0, 12]) + b"GET / HTTP/1.0\r\n\r\n" + get,
        "gap-sized-body": bytes([0, 13]) + get + post[:120] + gap +
                          post[140:] + get,
    }
    return out


def capredact_seeds():
    """Seeds for fuzz_capredact (layout in fuzz_capredact.c): the extra
    name flag, then segments: direction, sequence step, length, bytes."""
    def seg(payload, direction=0, step=0):
        return bytes([direction, step & 0xff, len(payload)]) + payload
    head = (b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer abc\r\n"
            b"Cookie: a=1;\r\n b=2\r\nX-Api-Key: k\r\n\r\n")
    resp = b"HTTP/1.1 200 OK\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n"
    return {
        "whole": bytes([1]) + seg(head) + seg(resp, 1),
        "split": bytes([0]) + b"".join(seg(head[i:i + 7])
                                        for i in range(0, len(head), 7)),
        "retransmit": bytes([0]) + seg(head[:40]) + seg(head[30:60], 0, 246) +
                      seg(head[60:]),
        "hole": bytes([0]) + seg(head[:45]) + seg(head[50:], 0, 5),
        "reordered": bytes([0]) + seg(head[30:], 0, 30) +
                     seg(head[:30], 0, 256 - len(head)),
    }


TARGETS = {
    "capreader": capreader_seeds,
    "decode": decode_seeds,
    "reasm": reasm_seeds,
    "engine": engine_seeds,
    "cli": cli_seeds,
    "parse": parse_seeds,
    "pktseen": pktseen_seeds,
    "http1": http1_seeds,
    "httpbody": httpbody_seeds,
    "jsondiff": jsondiff_seeds,
    "textsafe": textsafe_seeds,
    "compare": compare_seeds,
    "diffreport": diffreport_seeds,
    "httpflow": httpflow_seeds,
    "capredact": capredact_seeds,
    "httpturn": httpturn_seeds,
}
# Written only once fuzz_kubejson.c exists (see fuzz/CMakeLists.txt).
if os.path.exists(os.path.join(HERE, "fuzz_kubejson.c")):
    TARGETS["kubejson"] = kubejson_seeds


def main():
    check = "--check" in sys.argv[1:]
    bad = 0
    total = 0
    for target, make in TARGETS.items():
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for name, data in sorted(make().items()):
            path = os.path.join(d, "seed-" + name)
            total += len(data)
            if check:
                try:
                    with open(path, "rb") as f:
                        same = f.read() == data
                except FileNotFoundError:
                    same = False
                if not same:
                    print(f"make_seeds: {path} is not what make_seeds.py writes")
                    bad += 1
            else:
                with open(path, "wb") as f:
                    f.write(data)
    if not check:
        print(f"make_seeds: wrote {total} bytes of seeds")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
