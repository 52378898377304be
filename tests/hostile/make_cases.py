#!/usr/bin/env python3
"""Generates the hostile-capture corpus, deterministically.

    tests/hostile/make_cases.py           write cases/ and cases.json
    tests/hostile/make_cases.py --check   exit 1 if the committed files differ

Every case is a small malformed (or merely unusual) capture plus what
tapmirror must do with it: for each command run on it (replay against a
local receiver, summary), the exit status, a regular expression the
standard error must match, and optionally the exact client bytes the
receiver must get, counters from --stats-json or summary --json, and the
exact -o output. run_cases.py runs them.

Three cases are large by nature (10,000 and 300,000 SYNs; 50,000 tiny
segments: a few MiB to 17 MB). They are not committed: cases.json marks them "generate" (with the
SHA-256 of their content) and run_cases.py builds them with this script
into a temporary directory.

Fields of cases.json ("runs" items):
  command   "replay" or "summary"
  args      extra arguments
  exit      expected exit status
  stderr    regex that standard error must match (re.search, multiline);
            "" means standard error must be empty
  delivered list of the exact client byte streams the receiver must get,
            one per connection, in any order: a string (its characters
            are the bytes, U+0000 to U+00FF) or {"size", "sha256"} for a
            long one; connections that carried nothing are ignored
  stats     {"a.b": N} counters in --stats-json (replay) or summary --json
            that must equal N; {"a.b": [">=", N]} for a bound
  connections  for replay: how many connections the receiver accepted,
            empty ones (the start-up probe) included
  output    for replay with -o: "prefix:N" = the output must be exactly
            the first N bytes of the input
  max_seconds  wall time limit for this run (default 10)
  min_seconds  the run must take at least this long (pacing)
  stdin     for replay: true = the capture is given as "-" on standard
            input (a live source: stamps ahead of this machine's clock
            are clamped)
  known_bug an explanation: the run is expected to fail until src/ is
            fixed; run_cases.py reports it as XFAIL (and XPASS when it
            starts passing, so the marker can be removed)
"""
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
PORT = 8080

sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from capbuild import (  # noqa: E402
    T0_NS as T0, block, epb, eth, idb, ip6, ipv4, ipv6, opts_hdr, pcap_header,
    pcap_record, shb, sll2, spb, tcp)


# ---------------------------------------------------------------- captures


def pcap(frames, linktype=1, snaplen=262144, step=1_000_000, **kw):
    out = [pcap_header(linktype, snaplen, **kw)]
    for i, f in enumerate(frames):
        out.append(pcap_record(f, T0 + i * step))
    return b"".join(out)


# ---------------------------------------------------------------- flows

C4, S4 = "10.0.0.1", "10.0.0.100"


class Flow:
    """One client connection to PORT: builds its packets as IP packets."""

    def __init__(self, client=C4, cport=40000, isn=1000, v6=False):
        self.client, self.cport, self.seq, self.v6 = client, cport, isn, v6
        self.srv_seq = 90000

    def ip(self, seg, to_server=True):
        if self.v6:
            c, s = ip6(1), ip6(100)
            return ipv6(c, s, seg) if to_server else ipv6(s, c, seg)
        return (ipv4(self.client, S4, seg) if to_server
                else ipv4(S4, self.client, seg))

    def syn(self):
        p = self.ip(tcp(self.cport, PORT, self.seq, 0, 0x02))
        self.seq += 1
        return p

    def synack(self):
        p = self.ip(tcp(PORT, self.cport, self.srv_seq, self.seq, 0x12), False)
        self.srv_seq += 1
        return p

    def data(self, payload, seq=None):
        s = self.seq if seq is None else seq
        p = self.ip(tcp(self.cport, PORT, s, self.srv_seq, 0x18, payload))
        if seq is None:
            self.seq += len(payload)
        return p

    def ack(self):
        return self.ip(tcp(PORT, self.cport, self.srv_seq, self.seq, 0x10), False)

    def fin(self):
        p = self.ip(tcp(self.cport, PORT, self.seq, self.srv_seq, 0x11))
        self.seq += 1
        return p

    def whole(self, payloads):
        pk = [self.syn(), self.synack()]
        for d in payloads:
            pk += [self.data(d), self.ack()]
        pk += [self.fin(), self.ack()]
        return pk


REQ = [b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"]
REQ_ALL = b"".join(REQ)


def good_eth(payloads=REQ, **kw):
    return [eth(p, 0x86DD if kw.get("v6") else 0x0800) for p in Flow(**kw).whole(payloads)]


def esc(b):
    """bytes -> the latin-1 text form used in cases.json."""
    return b.decode("latin-1")


# ---------------------------------------------------------------- cases

cases = []


def case(name, data, desc, runs, generate=False):
    cases.append({"name": name, "data": data, "description": desc,
                  "runs": runs, "generate": generate})


def replay(exit=0, stderr="", delivered=None, stats=None, args=(), **kw):
    r = {"command": "replay", "exit": exit, "stderr": stderr}
    if delivered is not None:
        # Long streams are given by length and SHA-256.
        r["delivered"] = [esc(d) if len(d) <= 256 else
                          {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                          for d in delivered]
    if stats:
        r["stats"] = stats
    if args:
        r["args"] = list(args)
    r.update(kw)
    return r


def summary(exit=0, stderr="", stats=None, args=(), **kw):
    r = {"command": "summary", "exit": exit, "stderr": stderr}
    if stats:
        r["stats"] = stats
    if args:
        r["args"] = list(args)
    r.update(kw)
    return r


NOT_CAPTURE = r"^tapmirror: .*not a pcap or pcapng capture"
TRUNC_WARN = r"^tapmirror: warning: .* ends inside a record"


def build():
    good = pcap(good_eth())
    hdr = pcap_header()

    # ---- containers: pcap ----
    # An input that ends before its file header is complete is not a
    # capture: an error, for replay and summary alike.
    empty = r"^tapmirror: .*: input is empty: not a capture$"
    case("empty.pcap", b"", "an empty file",
         [replay(1, empty, delivered=[]), summary(1, empty)])
    short = r"^tapmirror: .*: input ends after 1 bytes: not a capture$"
    case("global-header-1-bytes.pcap", hdr[:1],
         "the 24-byte pcap file header cut after 1 byte (the format is unknown)",
         [replay(1, short, delivered=[]), summary(1, short)])
    for n in (10, 23):
        cut = (rf"^tapmirror: .*: input ends inside the pcap file header "
               rf"\({n} bytes\): not a complete capture$")
        case(f"global-header-{n}-bytes.pcap", hdr[:n],
             f"the 24-byte pcap file header cut after {n} bytes",
             [replay(1, cut, delivered=[]), summary(1, cut)])
    case("wrong-magic.pcap", b"\xde\xad\xbe\xef" + hdr[4:] + pcap_record(good_eth()[0]),
         "a pcap file whose magic number is wrong",
         [replay(1, NOT_CAPTURE + r" \(first bytes de ad be ef\)$", delivered=[]),
          summary(1, NOT_CAPTURE)])
    case("text.pcap", b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
         "text where a capture should be (an HTTP response saved by mistake)",
         [replay(1, NOT_CAPTURE + r": it starts with text \"HTTP/1.1 404 Not Found\"",
                 delivered=[]),
          summary(1, NOT_CAPTURE)])
    whole = good_eth()
    cut_hdr = pcap(whole) + pcap_record(whole[2], T0 + 10**9)[:10]
    case("truncated-record-header.pcap", cut_hdr,
         "a whole connection, then a record cut inside its 16-byte header",
         [replay(0, TRUNC_WARN, delivered=[REQ_ALL],
                 stats={"source.truncated": True, "flows.completed": 1}),
          summary(0, TRUNC_WARN, stats={"packets": 8, "truncated": True})])
    rec = pcap_record(whole[2], T0 + 10**9)
    cut_data = pcap(whole) + rec[:16 + len(whole[2]) // 2]
    case("truncated-record-data.pcap", cut_data,
         "a whole connection, then a record with half its data",
         [replay(0, TRUNC_WARN, delivered=[REQ_ALL],
                 stats={"source.truncated": True}),
          summary(0, TRUNC_WARN, stats={"packets": 8})])
    case("caplen-over-snaplen.pcap", pcap(whole, snaplen=64),
         "records longer than the file's snap length of 64 (accepted)",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    over = hdr
    for i, f in enumerate(whole):
        over += pcap_record(f, T0 + i * 1000, wirelen=max(1, len(f) - 20))
    case("caplen-over-wirelen.pcap", over,
         "records whose captured length exceeds the original length (accepted)",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    huge = pcap(whole) + struct.pack("<IIII", 1700000001, 0, 0xFFFFFFFF,
                                     0xFFFFFFFF) + bytes(64)
    case("caplen-4gib.pcap", huge,
         "a whole connection, then a record claiming 4 GiB of data",
         [replay(1, r"^tapmirror: .*record length 4294967295 exceeds the maximum",
                 delivered=[REQ_ALL], max_rss_mib=64),
          summary(1, r"^tapmirror: .*record length 4294967295 exceeds the maximum")])
    f = Flow()
    pk = [eth(p) for p in f.whole(REQ)]
    zero = hdr
    for i, fr in enumerate(pk):
        zero += pcap_record(fr, T0 + i * 1000)
        if i == 2:
            zero += pcap_record(b"", T0 + i * 1000)                # 0 of 0
            zero += pcap_record(b"", T0 + i * 1000, wirelen=60)    # 0 of 60
    case("zero-length-records.pcap", zero,
         "records with no captured bytes (0 of 0, and 0 of 60) inside a connection",
         [replay(0, "", delivered=[REQ_ALL],
                 stats={"segments.truncated": 1, "segments.malformed": 1}),
          summary(0, "", stats={"packets": 10, "client_bytes": len(REQ_ALL)})])
    case("pcap-version-1-0.pcap", pcap(whole, version=(1, 0)),
         "a pcap file of version 1.0",
         [replay(1, r"^tapmirror: .*unsupported pcap version 1\.0", delivered=[]),
          summary(1, r"^tapmirror: .*unsupported pcap version 1\.0")])

    # ---- containers: pcapng ----
    ng_head = shb() + idb(1)
    epbs = b"".join(epb(0, T0 // 1000 + i, fr) for i, fr in enumerate(whole))
    epb_list = [epb(0, T0 // 1000 + i, fr) for i, fr in enumerate(whole)]
    case("pcapng-unknown-block.pcapng",
         ng_head + block(0x0BAD, b"not a standard block") + b"".join(epb_list[:3])
         + block(0x80000001, b"custom") + b"".join(epb_list[3:]),
         "pcapng with unknown and custom block types between packets (skipped)",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          summary(0, "", stats={"packets": 8})])
    # The leading length is over 16 MiB; the data is not there at all.
    case("pcapng-oversized-block.pcapng",
         ng_head + epbs + struct.pack("<II", 6, 16 * 1024 * 1024 + 4) + bytes(32),
         "a block whose length is over 16 MiB",
         [replay(1, r"^tapmirror: .*invalid block length 16777220",
                 delivered=[REQ_ALL], max_rss_mib=64),
          summary(1, r"^tapmirror: .*invalid block length")])
    bad_trailer = block(6, struct.pack("<IIIII", 0, 0, 5, 4, 4) + b"abcd", trailer=40)
    case("pcapng-trailing-length-mismatch.pcapng", ng_head + epbs + bad_trailer,
         "a block whose trailing length differs from its leading length",
         [replay(1, r"^tapmirror: .*trailing length does not match",
                 delivered=[REQ_ALL]),
          summary(1, r"^tapmirror: .*trailing length does not match")])
    odd = struct.pack("<II", 6, 34) + bytes(22) + struct.pack("<I", 34)
    case("pcapng-block-length-not-multiple-of-4.pcapng", ng_head + epbs + odd,
         "a block length of 34 (not a multiple of 4)",
         [replay(1, r"^tapmirror: .*invalid block length 34", delivered=[REQ_ALL]),
          summary(1, r"^tapmirror: .*invalid block length 34")])
    case("pcapng-missing-interface.pcapng", ng_head + epbs + epb(3, 0, whole[0]),
         "a packet block naming interface 3 of a section with one interface",
         [replay(1, r"^tapmirror: .*unknown interface 3", delivered=[REQ_ALL]),
          summary(1, r"^tapmirror: .*unknown interface 3")])
    case("pcapng-mixed-link-types.pcapng",
         shb() + idb(1) + idb(147) + epbs + epb(1, T0 // 1000 + 99, b"\x00" * 40),
         "two interfaces, Ethernet and USER0 (147): a packet of the second is an error",
         [replay(1, r"^tapmirror: .*link type .*\(147\).*cannot decode",
                 delivered=[REQ_ALL]),
          summary(0, "", stats={"packets": 9, "client_bytes": len(REQ_ALL)})])
    case("pcapng-simple-packet-blocks.pcapng",
         shb() + idb(1) + b"".join(spb(fr) for fr in whole),
         "packets in Simple Packet Blocks (no timestamps)",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          summary(0, "", stats={"packets": 8, "client_bytes": len(REQ_ALL)})])
    for res, what in ((0x80 | 63, "2^-63 s"), (0x80 | 127, "2^-127 s"),
                      (0x80, "2^0 s"), (30, "10^-30 s"), (0, "10^0 s")):
        name = f"pcapng-tsresol-{res:02x}.pcapng"
        body = shb() + idb(1, tsresol=res) + b"".join(
            epb(0, (2**64 - 1) - 50 + i, fr) for i, fr in enumerate(whole))
        case(name, body,
             f"if_tsresol {res:#04x} ({what}) with timestamps near 2^64",
             [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
              summary(0, "", stats={"packets": 8})])

    # ---- clocks that jump (pacing: --max-pause caps a wait, a step back
    # resumes the spacing; a file keeps its capture time) ----
    year = 365 * 86400 * 10**9
    stamps = [T0 + i * 1_000_000 for i in range(len(whole))]
    stamps[3] = T0 + year  # the first request's ACK: forged a year ahead
    case("ts-future-jump.pcap",
         pcap_header() + b"".join(pcap_record(fr, ts) for fr, ts in zip(whole, stamps)),
         "one record stamped a year ahead in the middle of a connection",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          replay(0, r"^tapmirror: warning: .*clock jumps 31536000 s .*--max-pause",
                 delivered=[REQ_ALL], args=["--pace", "realtime", "--max-pause", "1s"],
                 stats={"flows.completed": 1, "source.pauses_capped": 1},
                 min_seconds=0.9, max_seconds=6),
          summary(0, "", stats={"packets": 8})])
    back = 3600 * 10**9
    stamps = [T0, T0 + 1_000_000] + [T0 - back + i * 300_000_000
                                     for i in range(len(whole) - 2)]
    case("ts-backward-jump.pcap",
         pcap_header() + b"".join(pcap_record(fr, ts) for fr, ts in zip(whole, stamps)),
         "the clock steps back an hour after the handshake, then 300 ms a packet",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          replay(0, "", delivered=[REQ_ALL], args=["--pace", "realtime"],
                 stats={"flows.completed": 1, "source.pauses_capped": 0},
                 min_seconds=1.4, max_seconds=6),
          summary(0, "", stats={"packets": 8})])
    # Interface 1 is 2^62 s ahead (past 2^64 ns: saturates), interface 2
    # 2^62 s behind (before the epoch: 0, no time).
    ifaces = idb(1) + idb(1, tsoffset=2**62) + idb(1, tsoffset=-2**62)
    on = [0, 0, 0, 1, 0, 2, 0, 0]
    case("pcapng-tsoffset-jump.pcapng",
         shb() + ifaces + b"".join(epb(ifid, T0 // 1000 + i, fr)
                                   for i, (ifid, fr) in enumerate(zip(on, whole))),
         "packets of interfaces whose if_tsoffset is +2^62 s and -2^62 s",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          replay(0, r"^tapmirror: warning: .*clock jumps .*--max-pause",
                 delivered=[REQ_ALL], args=["--pace", "0.5x", "--max-pause", "1s"],
                 stats={"flows.completed": 1, "source.pauses_capped": 1},
                 min_seconds=0.9, max_seconds=6),
          # Through a pipe it is a live source: the stamp past 2^63 ns is
          # taken as now (counted, warned about), the one before the
          # epoch moves nothing, and the connection is not expired.
          replay(0, r"^tapmirror: warning: .*stamped \d+ s ahead of this "
                    r"machine's clock",
                 delivered=[REQ_ALL], stdin=True,
                 stats={"flows.completed": 1, "flows.expired": 0,
                        "source.timestamps_clamped": 1}),
          summary(0, "", stats={"packets": 8})])

    # ---- IP and TCP headers ----
    def with_bad(bad_frames, link=1, linktype=1):
        f = Flow()
        pk = [eth(p) for p in f.whole(REQ)] if link == 1 else f.whole(REQ)
        return pcap(pk[:3] + bad_frames + pk[3:], linktype=linktype)

    seg = tcp(40001, PORT, 5, 6, 0x18, b"junk")
    ipv4_bad_ihl = ipv4(C4, S4, seg, ihl=4)
    case("ipv4-ihl-under-20.pcap", with_bad([eth(ipv4_bad_ihl)]),
         "an IPv4 header length of 16 bytes (IHL 4)",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    p = ipv4(C4, S4, seg, opts=bytes([1] * 40))  # IHL 15: 60 bytes
    case("ipv4-header-past-capture.pcap", with_bad([eth(p)[:14 + 30]]),
         "an IPv4 header (60 bytes with options) longer than the 30 bytes captured",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    case("ipv4-total-length-under-header.pcap",
         with_bad([eth(ipv4(C4, S4, seg, total=12))]),
         "an IPv4 total length of 12, shorter than the header",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    case("tcp-data-offset-under-5.pcap",
         with_bad([eth(ipv4(C4, S4, tcp(40001, PORT, 5, 6, 0x18, b"junk", doff=3)))]),
         "a TCP data offset of 3 (12 bytes)",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    case("tcp-data-offset-past-packet.pcap",
         with_bad([eth(ipv4(C4, S4, tcp(40001, PORT, 5, 6, 0x18, b"junk", doff=15)))]),
         "a TCP data offset of 60 bytes in a 24-byte segment",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    loop = b"".join(opts_hdr(0 if i % 2 else 60) for i in range(19)) + opts_hdr(6)
    case("ipv6-extension-header-loop.pcap",
         with_bad([eth(ipv6(ip6(1), ip6(100), seg, nh=0, ext=loop), 0x86DD)]),
         "an IPv6 chain of 20 alternating hop-by-hop/destination-options headers",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    off_end = bytes([6, 255]) + bytes(6)  # claims 2048 bytes
    case("ipv6-extension-header-past-end.pcap",
         with_bad([eth(ipv6(ip6(1), ip6(100), seg, nh=60, ext=off_end), 0x86DD)]),
         "an IPv6 destination-options header claiming 2048 bytes in a short packet",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.malformed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    tags3 = [(0x88A8, 10), (0x8100, 20), (0x8100, 30)]
    case("vlan-3-tags.pcap",
         pcap([eth(p, 0x0800, tags3) for p in Flow().whole(REQ)]),
         "a connection inside three VLAN tags (QinQ plus one)",
         [replay(0, "", delivered=[REQ_ALL], stats={"flows.completed": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])
    tags20 = [(0x8100, i) for i in range(20)]
    case("vlan-20-tags.pcap",
         pcap([eth(p, 0x0800, tags20) for p in Flow().whole(REQ)]),
         "a connection inside twenty VLAN tags (malformed)",
         [replay(0, "", delivered=[], stats={"segments.malformed": 8,
                                             "flows.seen": 0}),
          summary(0, "", stats={"connections": 0})])
    f = Flow()
    sll2_frames = [sll2(p, 0x0800) for p in f.whole(REQ)]
    sll2_frames.insert(3, sll2(ipv4(C4, S4, seg), 0x1234))
    case("sll2-unknown-protocol.pcap", pcap(sll2_frames, linktype=276),
         "an SLL2 packet with protocol 0x1234 inside a connection",
         [replay(0, "", delivered=[REQ_ALL], stats={"segments.not_ip": 1}),
          summary(0, "", stats={"client_bytes": len(REQ_ALL)})])

    # A record cut by the snap length whose IPv4 total length (60000) is
    # larger than the packet was on the wire (140 bytes): only the 20
    # bytes the capture lacks are a gap; the next segment is new data.
    f = Flow()
    d1, d2 = b"1" * 100, b"2" * 50
    pk = [eth(f.syn()), eth(f.synack())]
    big = eth(ipv4(C4, S4, tcp(40000, PORT, f.seq, f.srv_seq, 0x18, d1), total=60000))
    f.seq += len(d1)
    pk2 = [eth(f.data(d2)), eth(f.ack()), eth(f.fin()), eth(f.ack())]
    body = pcap_header(snaplen=120)
    for i, fr in enumerate(pk):
        body += pcap_record(fr, T0 + i * 1000)
    body += pcap_record(big[:120], T0 + 5000, wirelen=len(big))
    for i, fr in enumerate(pk2):
        body += pcap_record(fr, T0 + 6000 + i * 1000)
    case("ip-length-beyond-wire-length.pcap", body,
         "a record cut by the snap length whose IPv4 total length (60000) "
         "exceeds the packet's original length (154 bytes)",
         [replay(0, "", delivered=[d1[:66] + d2],
                 stats={"flows.gap_bytes": 34, "flows.completed": 1}),
          summary(0, "", stats={"client_bytes": 66 + 50, "gap_bytes": 34})])

    # ---- sequence numbers ----
    f = Flow(isn=1000)
    pk = [f.syn(), f.synack(), f.data(b"AAAA")]
    pk.append(f.data(b"BBBB", seq=f.seq + 2**31))  # 2^31 away: ambiguous
    pk += [f.data(b"CCCC"), f.ack(), f.fin(), f.ack()]
    case("sequence-jump-2-31.pcap", pcap([eth(p) for p in pk]),
         "a segment 2^31 bytes ahead of the stream (as far behind as ahead)",
         [replay(0, "", delivered=[b"AAAACCCC"], stats={"flows.completed": 1,
                                                      "flows.gaps": 0}),
          summary(0, "", stats={"client_bytes": 8})])
    f = Flow(isn=0xFFFFFFF0)
    case("sequence-wrap.pcap", pcap([eth(p) for p in f.whole([b"x" * 40, b"y" * 40])]),
         "a connection whose sequence numbers wrap past 2^32",
         [replay(0, "", delivered=[b"x" * 40 + b"y" * 40],
                 stats={"flows.completed": 1}),
          summary(0, "", stats={"client_bytes": 80})])

    # ---- floods (generated at test time) ----
    syns = [pcap_header(101)]
    for i in range(10000):
        src = f"10.{1 + i // 60000}.{(i // 250) % 240}.{1 + i % 250}"
        syns.append(pcap_record(ipv4(src, S4, tcp(1024 + i % 60000, PORT,
                                                  i * 7919, 0, 0x02)),
                                T0 + i * 1000))
    syns = b"".join(syns)
    case("syn-flood-10000.pcap", syns,
         "10,000 distinct SYNs and nothing else (fast, bounded)",
         [replay(0, "", delivered=[], stats={"flows.seen": 10000,
                                             "flows.unfinished": 10000},
                 max_rss_mib=64, args=["--max-connections", "64"]),
          replay(0, "", delivered=[], stats={"flows.seen": 10000}),
          summary(0, "", stats={"connections": 10000}, max_rss_mib=64)],
         generate=True)
    # 300,000 bare SYNs with a 16 MiB budget: the flows' state is charged
    # to --max-buffer (the oldest SYN-only flows are ended), and a flow
    # dials the target only at its first byte, so the receiver sees the
    # start-up probe and nothing else.
    syns = [pcap_header(101)]
    for i in range(300000):
        src = f"10.{(i >> 16) + 1}.{(i >> 8) & 255}.{i & 255}"
        syns.append(pcap_record(ipv4(src, S4, tcp(1024 + i % 60000, PORT,
                                                  i * 7919, 0, 0x02)),
                                T0 + i * 1000))
    syns = b"".join(syns)
    case("syn-flood-300000.pcap", syns,
         "300,000 distinct SYNs and nothing else, with --max-buffer 16MiB: "
         "memory within the budget plus 32 MiB, no local connection",
         [replay(0, "", delivered=[], connections=1,
                 stats={"flows.seen": 300000,
                        "flows.evicted": [">=", 250000]},
                 max_rss_mib=16 + 32, args=["--max-buffer", "16MiB"])],
         generate=True)
    n = 50000
    f = Flow(isn=5000)
    pk = [f.syn(), f.synack()]
    base = f.seq
    stream = bytes((i * 31 + 7) & 0xFF for i in range(n))
    # Every byte its own segment, in a scrambled order; byte 0 comes last,
    # so everything before it waits in the queue.
    order = [(i * 7919) % (n - 1) + 1 for i in range(n - 1)] + [0]
    for i in order:
        pk.append(f.data(stream[i:i + 1], seq=base + i))
    f.seq = base + n
    pk += [f.fin(), f.ack()]
    ooo = b"".join([pcap_header(101)] + [pcap_record(p, T0 + i * 1000)
                                         for i, p in enumerate(pk)])
    # A flow queues at most 4096 pieces behind a hole (contiguous segments
    # merge into one): past that, holes are skipped and counted, so a
    # scramble of tiny segments costs gaps, never quadratic time.
    case("out-of-order-50000.pcap", ooo,
         "one connection of 50,000 one-byte segments in scrambled order",
         [replay(0, "", stats={"flows.completed": 1, "flows.gaps": [">=", 1]},
                 max_seconds=3, max_rss_mib=64),
          summary(0, "", stats={"gaps": [">=", 1]}, max_seconds=3),
          # A small queue: holes are skipped (gaps), memory stays bounded.
          replay(0, "", stats={"flows.completed": 1, "flows.gaps": [">=", 1]},
                 args=["--flow-buffer", "4KiB"], max_seconds=3)],
         generate=True)

    # ---- not hostile, but found here: a plain upload, a small --flow-buffer ----
    f = Flow()
    pk = [f.syn(), f.synack()] + [f.data(bytes([65 + i % 26]) * 1000)
                                  for i in range(20)]
    pk += [f.ack(), f.fin(), f.ack()]
    upload = b"".join(bytes([65 + i % 26]) * 1000 for i in range(20))
    case("upload-20k-flow-buffer-4k.pcap", pcap([eth(p) for p in pk]),
         "an in-order 20,000-byte upload replayed with --flow-buffer 4KiB "
         "from a file (which can always wait)",
         [replay(0, "", delivered=[upload], args=["--flow-buffer", "4KiB"]),
          replay(0, "", delivered=[upload])])

    # ---- output of a capture corrupt mid-file ----
    body = pcap(whole)
    case("corrupt-mid-file-output.pcap",
         body + struct.pack("<IIII", 1700000001, 0, 0x7FFFFFFF, 60) + bytes(60)
         + pcap_record(whole[0]),
         "whole records, then a corrupt record length, then more records: "
         "-o holds exactly the records before the corruption",
         [replay(1, r"^tapmirror: .*record length 2147483647 exceeds the maximum",
                 delivered=[REQ_ALL], output=f"prefix:{len(body)}")])
    ngbody = ng_head + epbs
    case("corrupt-mid-file-output.pcapng",
         ngbody + block(6, bytes(24), trailer=99) + epb(0, 0, whole[0]),
         "pcapng: whole blocks, then one with a bad trailing length: -o holds "
         "exactly the blocks before it",
         [replay(1, r"^tapmirror: .*trailing length does not match",
                 delivered=[REQ_ALL], output=f"prefix:{len(ngbody)}")])
    cut = pcap(whole) + pcap_record(whole[3])[:30]
    case("truncated-output.pcap", cut,
         "a capture cut inside its last record: -o holds the whole records",
         [replay(0, TRUNC_WARN, delivered=[REQ_ALL], output=f"prefix:{len(cut) - 30}")])


def render():
    """{relative path: bytes} of everything make_cases.py writes."""
    cases.clear()
    build()
    files = {}
    index = []
    for c in cases:
        entry = {"name": c["name"], "size": len(c["data"]),
                 "description": c["description"]}
        if c["generate"]:
            entry["generate"] = True
            entry["sha256"] = hashlib.sha256(c["data"]).hexdigest()
        else:
            entry["file"] = "cases/" + c["name"]
            files[entry["file"]] = c["data"]
        entry["runs"] = c["runs"]
        index.append(entry)
    text = json.dumps({"port": PORT, "cases": index}, indent=1,
                      ensure_ascii=True) + "\n"
    files["cases.json"] = text.encode()
    return files


def generated(name):
    """The content of a case that is generated at test time."""
    if not cases:
        build()
    for c in cases:
        if c["name"] == name:
            return c["data"]
    raise KeyError(name)


def same(path, data):
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except FileNotFoundError:
        return False


def main():
    check = "--check" in sys.argv[1:]
    files = render()
    bad = 0
    for rel, data in sorted(files.items()):
        path = os.path.join(HERE, rel)
        if check:
            if not same(path, data):
                print(f"make_cases: {rel} is not what make_cases.py generates")
                bad += 1
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not same(path, data):
                with open(path, "wb") as f:
                    f.write(data)
    if check:
        known = {os.path.basename(r) for r in files if r.startswith("cases/")}
        for name in sorted(os.listdir(CASES)):
            if name not in known and not name.startswith("."):
                print(f"make_cases: cases/{name} is not generated by make_cases.py")
                bad += 1
        if not bad:
            print(f"make_cases: {len(files) - 1} cases match")
    else:
        total = sum(len(d) for d in files.values())
        print(f"make_cases: {len(files) - 1} cases, {total} bytes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
