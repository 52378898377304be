"""Builders for link, IP and TCP headers and for pcap and pcapng files.

Shared by the generators of committed test inputs (fuzz/make_seeds.py,
tests/hostile/make_cases.py). Each builder returns bytes and takes the
fields a malformed input needs to set (lengths, offsets, byte order), so
both well-formed and broken captures come from the same code. Changing
what a builder writes changes committed files: run both generators with
--check afterwards.
"""
import struct

T0_NS = 1_700_000_000 * 1_000_000_000       # a fixed, recent capture time

# ---------------------------------------------------------------- headers


def be16(v):
    return struct.pack(">H", v & 0xFFFF)


def be32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def ip6(last, prefix=0xFD00):
    return be16(prefix) + bytes(13) + bytes([last])


def tcp(sport, dport, seq, ack, flags, payload=b"", opts=b"", doff=None):
    """doff overrides the data offset the options imply (a broken header)."""
    if doff is None:
        doff = (20 + len(opts)) // 4
    return (be16(sport) + be16(dport) + be32(seq) + be32(ack)
            + bytes([(doff & 15) << 4, flags]) + be16(65535) + be16(0) + be16(0)
            + opts + payload)


def ipv4(src, dst, l4, proto=6, opts=b"", frag=0x4000, total=None, ihl=None):
    if ihl is None:
        ihl = (20 + len(opts)) // 4
    if total is None:
        total = 20 + len(opts) + len(l4)
    return (bytes([0x40 | (ihl & 15), 0]) + be16(total) + be16(1) + be16(frag)
            + bytes([64, proto]) + be16(0) + ip4(src) + ip4(dst) + opts + l4)


def ipv6(src, dst, l4, nh=6, ext=b"", plen=None):
    if plen is None:
        plen = len(ext) + len(l4)
    return (bytes([0x60, 0, 0, 0]) + be16(plen) + bytes([nh, 64])
            + src + dst + ext + l4)


def opts_hdr(nh, units=0):
    """A hop-by-hop or destination-options header of 8 * (1 + units) bytes."""
    return bytes([nh, units, 1, 4 + 8 * units]) + bytes(4 + 8 * units)


def frag_hdr(nh, offflags=0):
    return bytes([nh, 0]) + be16(offflags) + be32(0x1234)


def eth(payload, ethertype=0x0800, tags=()):
    hdr = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2])
    for tpid, tci in tags:
        hdr += be16(tpid) + be16(tci)
    return hdr + be16(ethertype) + payload


def sll(payload, proto):
    return be16(0) + be16(1) + be16(6) + bytes(8) + be16(proto) + payload


def sll2(payload, proto):
    return be16(proto) + be16(0) + be32(1) + be16(1) + bytes([0, 6]) + bytes(8) + payload


def null_le(payload, fam):
    return struct.pack("<I", fam) + payload


def null_be(payload, fam):
    return struct.pack(">I", fam) + payload

# ---------------------------------------------------------------- pcap

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_MAGIC_MODIFIED = 0xA1B2CD34        # Alexey Kuznetsov's patched libpcap


def pcap_header(linktype=1, snaplen=262144, be=False, version=(2, 4),
                magic=PCAP_MAGIC_US):
    e = ">" if be else "<"
    return struct.pack(e + "IHHiIII", magic, version[0], version[1], 0, 0,
                       snaplen, linktype)


def pcap_record(data, ts_ns=T0_NS, caplen=None, wirelen=None, be=False,
                nanos=False, modified=False):
    """A record header and its data; caplen and wirelen may lie."""
    e = ">" if be else "<"
    if caplen is None:
        caplen = len(data)
    if wirelen is None:
        wirelen = len(data)
    sec, frac = divmod(ts_ns, 1_000_000_000)
    if not nanos:
        frac //= 1000
    out = struct.pack(e + "IIII", sec, frac, caplen, wirelen)
    if modified:        # ifindex, protocol, pkt_type, padding
        out += struct.pack(e + "IHBB", 1, 0, 0, 0)
    return out + data

# ---------------------------------------------------------------- pcapng


def pad4(b):
    return b + bytes(-len(b) % 4)


def block(btype, body, be=False, length=None, trailer=None):
    """A pcapng block; length and trailer override its two total lengths."""
    e = ">" if be else "<"
    body = pad4(body)
    n = 12 + len(body)
    return (struct.pack(e + "II", btype, n if length is None else length) + body
            + struct.pack(e + "I", n if trailer is None else trailer))


def opt(code, value, be=False):
    e = ">" if be else "<"
    return struct.pack(e + "HH", code, len(value)) + pad4(value)


def shb(be=False):
    e = ">" if be else "<"
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), be)


def idb(linktype, snaplen=262144, tsresol=None, tsoffset=None, be=False):
    e = ">" if be else "<"
    body = struct.pack(e + "HHI", linktype, 0, snaplen)
    opts = b""
    if tsresol is not None:
        opts += opt(9, bytes([tsresol]), be)
    if tsoffset is not None:
        opts += opt(14, struct.pack(e + "q", tsoffset), be)
    if opts:
        opts += opt(0, b"", be)
    return block(1, body + opts, be)


def epb(ifid, ts, data, wirelen=None, be=False):
    e = ">" if be else "<"
    if wirelen is None:
        wirelen = len(data)
    body = struct.pack(e + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF,
                       len(data), wirelen) + data
    return block(6, body, be)


def opb(ifid, ts, data, be=False):
    e = ">" if be else "<"
    body = struct.pack(e + "HHIIII", ifid, 0, ts >> 32, ts & 0xFFFFFFFF,
                       len(data), len(data)) + data
    return block(2, body, be)


def spb(data, wirelen=None, be=False):
    e = ">" if be else "<"
    if wirelen is None:
        wirelen = len(data)
    return block(3, struct.pack(e + "I", wirelen) + data, be)
