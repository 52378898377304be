/*
 * Live capture on an interface through libpcap, with two kernel rings
 * (source_open_live() in source.h opens one; live.c implements it).
 * Why two rings, and the measurements behind the numbers below:
 * docs/DESIGN.md, "Live capture: two rings".
 *
 * By default (--batch-above 0) a live capture has one ring that packs
 * packets into blocks (TPACKET_V3): deep enough that a burst from idle
 * drops nothing, for up to BLOCK_TIMEOUT_MS of added latency. With a
 * --batch-above rate it delivers each packet as it arrives while traffic
 * is light, from a per-packet ring (TPACKET_V2, immediate mode). Above
 * --batch-above packets/s, when one read finds RING_PRESSURE_PACKETS
 * waiting, or on a kernel drop, it hands over to a second ring that packs
 * packets into blocks (TPACKET_V3), for up to BLOCK_TIMEOUT_MS of added
 * latency; after QUIET_WINDOWS_TO_LEAVE windows below a fifth of the rate
 * it hands back. Both rings stay open; the one not in use is detached: a
 * filter that rejects everything, set on its socket.
 *
 * The hand-over contract: no packet is missed and none is delivered
 * twice.
 *  1. Now: the new ring is emptied (what it took before it was detached
 *     is old: the other ring had it, or it is counted in handover_lost),
 *     then attached with the real filter (pcap_setfilter). Both rings
 *     take every packet from now on, and both are read.
 *  2. HANDOVER_OVERLAP_MS later: the old ring is detached, on its socket
 *     (SO_ATTACH_FILTER) rather than through libpcap, which would apply
 *     the filter to the packets already queued and lose them.
 *  3. HANDOVER_DRAIN_PACKETS_MS (per-packet ring) or
 *     HANDOVER_DRAIN_BLOCKS_MS (block ring) later: the old ring is read
 *     empty and left.
 * Every packet stamped after the attach less ATTACH_MARGIN_US is
 * fingerprinted (pktseen, one multiset per ring; the wire length and the
 * first FINGERPRINT_BYTES): whichever ring delivers it first, the other
 * ring's copy is skipped (duplicates_skipped). For DEDUP_WINDOW_MS after
 * step 3 the new ring's packets are still checked against the old
 * ring's. A packet stamped before the attach found in the new ring is
 * skipped; if it is also older than the attach that left its ring, no
 * other ring had it, and it is counted in handover_lost.
 *
 * Stopping (source_stop_then): both rings are read as usual, a hand-over
 * in progress goes on, packets stamped after the stop are skipped, for at
 * most SOURCE_FINAL_READ_MS; the first read runs from the loop, because
 * libpcap's reads must not nest in a packet callback.
 */
#ifndef TAPMIRROR_LIVE_H
#define TAPMIRROR_LIVE_H

#define BLOCK_TIMEOUT_MS          1
#define RATE_WINDOW_MS            100
/* A per-packet read that finds this many packets waiting means the ring
 * (about 1,000 packets on lo) is filling faster than it is read: switch
 * now rather than at the end of the window. */
#define RING_PRESSURE_PACKETS     512
#define QUIET_WINDOWS_TO_LEAVE    10 /* 1 s below a fifth of the rate */
/* A packet the kernel is handing to the two sockets on another CPU
 * reaches at least one of them. */
#define HANDOVER_OVERLAP_MS       1
/* A block ring hands over its last, partly filled block only when its
 * timer retires it, which kernels with a tick-based timer do up to tens
 * of milliseconds late; a packet ring may still be receiving a packet on
 * the other CPU. */
#define HANDOVER_DRAIN_BLOCKS_MS  100
#define HANDOVER_DRAIN_PACKETS_MS 5
/* The two sockets timestamp a packet microseconds apart. */
#define ATTACH_MARGIN_US          1000
#define DEDUP_WINDOW_MS           50
/* Fingerprints kept per ring and hand-over: more than a ring holds. */
#define DEDUP_LIMIT               (256u * 1024)
/* The two rings may keep different lengths of a packet larger than
 * 64 KiB; the headers, TCP checksum included, are in the first bytes. */
#define FINGERPRINT_BYTES         256

/* One live capture: its rings, its poll handles and timers (all created
 * when it is opened and closed together), and the hand-over state. */
struct live_capture;

#endif
