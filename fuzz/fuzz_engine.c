/*
 * fuzz_engine: the mirroring engine fed mostly-valid TCP frames built
 * from the fuzz input (so that the fuzzer reaches deep reassembly and
 * flow-table states), with some raw and damaged records, time steps and
 * engine_advance() calls, then engine_finish().
 *
 * Input layout:
 *   byte   bits 0-1: 3 = no service port (the engine guesses each
 *          connection's client), else port 8080; bit 2: service addresses
 *          are given (10.0.0.100 and, with bit 5, fd00::100); bit 3:
 *          finished flows are remembered for 5 s; bit 4: idle timeout of
 *          a few seconds; bit 6: engine_free() without engine_finish();
 *          bit 7: a large max_flows
 *   byte   max_flows - 1 (low 4 bits, so 1..16); bit 4: loopback
 *          clients are skipped (client 7 is on 127.0.0.8 or ::1); bit 5:
 *          flow state is capped at three flows' cost plus 600 bytes;
 *          bit 6: a flow that carries data costs 200 bytes more
 *   u16    per-flow queue cap (64 + value)
 *   u16    shared queue budget (value * 4)
 *   byte   gap timeout in ms; byte: retransmit wait in ms
 *   ops... until the input ends (at most 2048):
 *     op & 7 = 0..3: a frame (see build_frame), 4: time step of u16 ms
 *     and engine_advance(), 5: a raw record (link selector, u16 length,
 *     bytes), 6: a frame with one byte overwritten (u16 position, u8
 *     value), 7: with bits 3-4 = 2 engine_set_service_addrs() (the IPv4
 *     service address, and with bit 5 the IPv6 one), = 3 no service
 *     addresses, else engine_advance() at a time u16 s ahead (not kept).
 *
 * A frame: byte who (bits 0-2 client, bit 3 IPv6, bit 4 sent by the
 * server, bits 5-7 link type), byte TCP flags, byte sequence mode (bits
 * 0-1: in order, in order + i16, any u32, in order - u8; bit 2 another
 * server port; bit 3 IPv4 options or IPv6 extension headers; bits 4-5
 * VLAN tags; bit 6 IPv4 total length 0 (TSO); bit 7 u16 payload length),
 * the sequence field, u32 ack offset, payload length (u8 or u16 % 2048),
 * byte cut (bytes the snap length removes from the end), byte time step
 * in ms. Payload bytes are T(sender, seq): every copy of a byte agrees.
 *
 * Checks: each flow's events come in order open -> (data|gap)* -> end and
 * none after its end; ids increase; each event starts at the flow's
 * reassembly position and data and gaps account for every advance;
 * delivered bytes are the sender's bytes at their sequence numbers (until
 * a raw or damaged record makes that unknowable); per-flow and total
 * byte, gap and flow counts match the engine's stats; the open flows
 * never exceed max_flows; the queued bytes never exceed the budget, nor
 * the flow state its own; the shared counter is the sum of the two;
 * after engine_finish() every flow has ended and nothing is queued.
 */
#include "fuzz_common.h"

#include "core/engine.h"
#include "core/wire.h"

#define MS          1000000ULL
#define SERVICE     8080
#define OTHER_PORT  9090
#define N_CLIENTS   8
#define MAX_OPS     2048
#define FRAME_MAX   4096

struct tracker {
    struct tracker *prev, *next;
    struct flow *f;
    uint32_t pos; /* f->rs.next expected at the next event */
    uint64_t data, gaps, gap_bytes;
    uint64_t mark; /* the last data event's server_acked */
    uint32_t spos; /* f->srv_rs.next expected at the next server event */
    bool sstarted, sended;
    uint64_t sdata, sgap_bytes;
};

struct side {
    uint32_t seq; /* next sequence number this side sends */
    bool syn_sent;
};

struct harness {
    struct engine *e;
    struct engine_config cfg;
    struct tracker live; /* list head of open flows' trackers */
    uint64_t opens, ends, last_id;
    uint64_t data_total, gap_events, gap_total;
    bool content_ok;
    uint64_t now;
    struct side client[2][N_CLIENTS], server[2][N_CLIENTS];
};

/* ---- the bytes every sender sends ---- */

static uint32_t sender_salt(uint8_t family, const uint8_t addr[16],
                            uint16_t port)
{
    uint8_t k[19];
    k[0] = family;
    memcpy(k + 1, addr, 16);
    wr_be16(k + 17, port);
    return (uint32_t)fz_fnv64(k, sizeof(k));
}

FZ_NO_COVERAGE static inline uint8_t true_byte(uint32_t salt, uint32_t seq)
{
    return (uint8_t)fz_mix(((uint64_t)salt << 32) | seq);
}

/* Client 7 is on the loopback address (a proxy hop inside the host). */
static void client_addr(int fam6, int idx, uint8_t a[16])
{
    memset(a, 0, 16);
    if (fam6) {
        if (idx == 7) {
            a[15] = 1;
            return;
        }
        a[0] = 0xfd;
        a[15] = (uint8_t)(1 + idx);
    } else {
        a[0] = idx == 7 ? 127 : 10;
        a[3] = (uint8_t)(1 + idx);
    }
}

static void server_addr(int fam6, uint8_t a[16])
{
    memset(a, 0, 16);
    if (fam6) {
        a[0] = 0xfd;
        a[14] = 0x01;
    } else {
        a[0] = 10;
        a[3] = 100;
    }
}

/* ---- engine events ---- */

static void check_pos(struct tracker *t, struct flow *f, const char *what)
{
    FZ_CHECK(t->pos == f->rs.next,
             "flow %llu: %s event at %u, previous events reached %u",
             (unsigned long long)f->id, what, f->rs.next, t->pos);
}

static void ev_open(void *ctx, struct flow *f)
{
    struct harness *h = ctx;
    FZ_CHECK(f->user == NULL, "flow %llu opened twice",
             (unsigned long long)f->id);
    FZ_CHECK(f->id > h->last_id, "flow id %llu after %llu",
             (unsigned long long)f->id, (unsigned long long)h->last_id);
    h->last_id = f->id;
    struct tracker *t = calloc(1, sizeof(*t));
    FZ_CHECK(t != NULL, "out of memory");
    t->f = f;
    t->pos = f->rs.next;
    t->next = h->live.next;
    t->prev = &h->live;
    h->live.next->prev = t;
    h->live.next = t;
    f->user = t;
    h->opens++;
    FZ_TRACE("  open flow %llu at seq %u (%s)", (unsigned long long)f->id,
             f->rs.next, (f->flags & FLOW_SYN) ? "SYN" : "mid-stream");
}

FZ_NO_COVERAGE static void ev_data(void *ctx, struct flow *f, const uint8_t *data,
                    uint32_t len, uint64_t server_acked)
{
    struct harness *h = ctx;
    struct tracker *t = f->user;
    FZ_CHECK(t != NULL && t->f == f, "data for flow %llu, not open",
             (unsigned long long)f->id);
    FZ_CHECK(len > 0, "empty data event");
    check_pos(t, f, "data");
    FZ_TRACE("  flow %llu: data %u at seq %u", (unsigned long long)f->id, len,
             t->pos);
    FZ_CHECK(server_acked >= t->mark,
             "flow %llu: server_acked went back from %llu to %llu",
             (unsigned long long)f->id, (unsigned long long)t->mark,
             (unsigned long long)server_acked);
    FZ_CHECK(server_acked <= engine_flow_server_sent(f),
             "flow %llu: server_acked %llu beyond the server's %llu",
             (unsigned long long)f->id, (unsigned long long)server_acked,
             (unsigned long long)engine_flow_server_sent(f));
    t->mark = server_acked;
    fz_touch(data, len);
    if (h->content_ok) {
        const struct flow_key *k = &f->node.key;
        uint32_t salt = sender_salt(k->family, k->caddr, k->cport);
        for (uint32_t i = 0; i < len; i++) {
            FZ_CHECK(data[i] == true_byte(salt, t->pos + i),
                     "flow %llu: byte at seq %u is %02x, the client sent "
                     "%02x",
                     (unsigned long long)f->id, t->pos + i, data[i],
                     true_byte(salt, t->pos + i));
        }
    }
    t->pos += len;
    t->data += len;
    h->data_total += len;
}

static void ev_gap(void *ctx, struct flow *f, uint32_t len)
{
    struct harness *h = ctx;
    struct tracker *t = f->user;
    FZ_CHECK(t != NULL && t->f == f, "gap for flow %llu, not open",
             (unsigned long long)f->id);
    FZ_CHECK(len > 0, "empty gap event");
    check_pos(t, f, "gap");
    FZ_TRACE("  flow %llu: gap %u at seq %u", (unsigned long long)f->id, len,
             t->pos);
    t->pos += len;
    t->gaps++;
    t->gap_bytes += len;
    h->gap_events++;
    h->gap_total += len;
}

static void ev_end(void *ctx, struct flow *f, enum flow_end_reason why)
{
    struct harness *h = ctx;
    struct tracker *t = f->user;
    FZ_CHECK(t != NULL && t->f == f, "end for flow %llu, not open",
             (unsigned long long)f->id);
    FZ_CHECK(why >= FLOW_END_FIN && why <= FLOW_END_INPUT, "end reason %d",
             (int)why);
    FZ_CHECK(strcmp(flow_end_reason_name(why), "unknown") != 0,
             "end reason name");
    FZ_CHECK(t->data == f->payload_bytes && t->gaps == f->gaps &&
                 t->gap_bytes == f->gap_bytes,
             "flow %llu: events say %llu bytes %llu gaps, flow says %llu "
             "bytes %u gaps",
             (unsigned long long)f->id, (unsigned long long)t->data,
             (unsigned long long)t->gaps,
             (unsigned long long)f->payload_bytes, f->gaps);
    FZ_CHECK(!h->cfg.reasm_server || t->sended,
             "flow %llu ended before its server stream",
             (unsigned long long)f->id);
    FZ_TRACE("  flow %llu: end (%s) after %llu bytes",
             (unsigned long long)f->id, flow_end_reason_name(why),
             (unsigned long long)t->data);
    if (why == FLOW_END_FIN) {
        FZ_CHECK(reasm_done(&f->rs), "flow %llu ended by FIN before it",
                 (unsigned long long)f->id);
    }
    t->prev->next = t->next;
    t->next->prev = t->prev;
    free(t);
    h->ends++;
}

/* The server's direction (reasm_server): in order, the bytes the server
 * sent, each once; its end once, before the flow's. */
FZ_NO_COVERAGE static void ev_server_data(void *ctx, struct flow *f,
                                          const uint8_t *data, uint32_t len)
{
    struct harness *h = ctx;
    struct tracker *t = f->user;
    FZ_CHECK(t != NULL && t->f == f, "server data for flow %llu, not open",
             (unsigned long long)f->id);
    FZ_CHECK(h->cfg.reasm_server, "server data without reasm_server");
    FZ_CHECK(len > 0 && !t->sended, "server data: %u bytes, ended %d", len,
             t->sended);
    FZ_CHECK(f->flags & FLOW_SRV_REASM, "server data before its start");
    if (!t->sstarted) {
        t->sstarted = true;
        t->spos = f->srv_rs.next;
    }
    FZ_CHECK(t->spos == f->srv_rs.next,
             "flow %llu: server data of %u at %u, stream is at %u",
             (unsigned long long)f->id, len, t->spos, f->srv_rs.next);
    FZ_TRACE("  flow %llu: server data %u at seq %u",
             (unsigned long long)f->id, len, t->spos);
    fz_touch(data, len);
    if (h->content_ok) {
        const struct flow_key *k = &f->node.key;
        uint32_t salt = sender_salt(k->family, k->saddr, k->sport);
        for (uint32_t i = 0; i < len; i++) {
            FZ_CHECK(data[i] == true_byte(salt, t->spos + i),
                     "flow %llu: server byte at seq %u is %02x, the server "
                     "sent %02x",
                     (unsigned long long)f->id, t->spos + i, data[i],
                     true_byte(salt, t->spos + i));
        }
    }
    t->spos += len;
    t->sdata += len;
}

static void ev_server_gap(void *ctx, struct flow *f, uint32_t len)
{
    struct harness *h = ctx;
    struct tracker *t = f->user;
    (void)h;
    FZ_CHECK(t != NULL && t->f == f, "server gap for flow %llu, not open",
             (unsigned long long)f->id);
    FZ_CHECK(len > 0 && !t->sended, "server gap: %u bytes, ended %d", len,
             t->sended);
    if (!t->sstarted) {
        t->sstarted = true;
        t->spos = f->srv_rs.next;
    }
    FZ_CHECK(t->spos == f->srv_rs.next,
             "flow %llu: server gap of %u at %u, stream is at %u",
             (unsigned long long)f->id, len, t->spos, f->srv_rs.next);
    FZ_TRACE("  flow %llu: server gap %u at seq %u",
             (unsigned long long)f->id, len, t->spos);
    t->spos += len;
    t->sgap_bytes += len;
}

static void ev_server_end(void *ctx, struct flow *f)
{
    struct tracker *t = f->user;
    (void)ctx;
    FZ_CHECK(t != NULL && t->f == f, "server end for flow %llu, not open",
             (unsigned long long)f->id);
    FZ_CHECK(!t->sended, "flow %llu: server end twice",
             (unsigned long long)f->id);
    FZ_CHECK(t->sdata == f->srv_payload_bytes &&
                 t->sgap_bytes == f->srv_gap_bytes,
             "flow %llu: server events say %llu+%llu bytes, flow says "
             "%llu+%llu",
             (unsigned long long)f->id, (unsigned long long)t->sdata,
             (unsigned long long)t->sgap_bytes,
             (unsigned long long)f->srv_payload_bytes,
             (unsigned long long)f->srv_gap_bytes);
    FZ_TRACE("  flow %llu: server end", (unsigned long long)f->id);
    t->sended = true;
}

static void check_stats(const struct harness *h)
{
    const struct engine_stats *st = engine_stats(h->e);
    FZ_CHECK(st->flows_seen == h->opens, "flows_seen %llu, %llu opened",
             (unsigned long long)st->flows_seen,
             (unsigned long long)h->opens);
    FZ_CHECK(st->flows_open == h->opens - h->ends,
             "flows_open %llu, %llu open", (unsigned long long)st->flows_open,
             (unsigned long long)(h->opens - h->ends));
    FZ_CHECK(st->payload_bytes == h->data_total,
             "payload_bytes %llu, %llu delivered",
             (unsigned long long)st->payload_bytes,
             (unsigned long long)h->data_total);
    FZ_CHECK(st->gaps == h->gap_events && st->gap_bytes == h->gap_total,
             "gaps %llu/%llu, events %llu/%llu",
             (unsigned long long)st->gaps, (unsigned long long)st->gap_bytes,
             (unsigned long long)h->gap_events,
             (unsigned long long)h->gap_total);
    uint64_t ended = st->flows_completed + st->flows_reset +
                     st->flows_expired + st->flows_evicted +
                     st->flows_unfinished + st->flows_replaced;
    FZ_CHECK(ended == h->ends, "end counters add to %llu, %llu ended",
             (unsigned long long)ended, (unsigned long long)h->ends);
    uint64_t decoded = 0;
    for (int v = 0; v < DECODE_VERDICT_COUNT; v++) {
        decoded += st->decode[v];
    }
    FZ_CHECK(decoded == st->packets, "verdicts %llu, packets %llu",
             (unsigned long long)decoded, (unsigned long long)st->packets);
    FZ_CHECK(st->flows_open <= h->cfg.max_flows, "%llu open, max %zu",
             (unsigned long long)st->flows_open, h->cfg.max_flows);
    FZ_CHECK(st->flows_open_peak <= h->cfg.max_flows, "peak %llu, max %zu",
             (unsigned long long)st->flows_open_peak, h->cfg.max_flows);
    FZ_CHECK(engine_queued_bytes(h->e) <= h->cfg.queue_budget,
             "%zu bytes queued, budget %zu", engine_queued_bytes(h->e),
             h->cfg.queue_budget);
    FZ_CHECK(*engine_queued_counter(h->e) ==
                 engine_queued_bytes(h->e) + engine_flow_state_bytes(h->e),
             "queued counter");
    if (h->cfg.flow_state_budget > 0) {
        FZ_CHECK(engine_flow_state_bytes(h->e) <= h->cfg.flow_state_budget,
                 "flow state %zu, budget %zu",
                 engine_flow_state_bytes(h->e), h->cfg.flow_state_budget);
    }
}

/* ---- frames ---- */

static const int frame_links[8] = {
    LINKTYPE_ETHERNET, LINKTYPE_ETHERNET,   LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,      LINKTYPE_NULL,
    LINKTYPE_LOOP,     LINKTYPE_IPV4, /* or LINKTYPE_IPV6 by family */
};

static const int raw_links[8] = {
    LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
    LINKTYPE_NULL,     LINKTYPE_LOOP,      LINKTYPE_IPV4,       LINKTYPE_IPV6,
};

/* Writes the link header for `ethertype`; returns its length. */
static size_t put_link(uint8_t *p, int link, bool v6, int tags)
{
    uint16_t et = v6 ? 0x86dd : 0x0800;
    size_t n = 0;
    switch (link) {
    case LINKTYPE_ETHERNET:
        memset(p, 0x02, 12);
        n = 12;
        break;
    case LINKTYPE_LINUX_SLL:
        memset(p, 0, 14);
        wr_be16(p + 2, 1);
        wr_be16(p + 4, 6);
        n = 14;
        break;
    case LINKTYPE_LINUX_SLL2:
        memset(p, 0, 20);
        if (tags == 0) {
            wr_be16(p, et);
            return 20;
        }
        /* Tags follow the 20-byte header; the type field is at 0. */
        wr_be16(p, 0x8100);
        n = 20;
        for (int i = 0; i < tags; i++) {
            wr_be16(p + n, (uint16_t)(i + 1)); /* TCI */
            wr_be16(p + n + 2, i + 1 < tags ? 0x8100 : et);
            n += 4;
        }
        return n;
    case LINKTYPE_NULL:
        wr_le32(p, v6 ? 30 : 2);
        return 4;
    case LINKTYPE_LOOP:
        wr_be32(p, v6 ? 24 : 2);
        return 4;
    default:
        return 0;
    }
    for (int i = 0; i < tags; i++) {
        wr_be16(p + n, i == 0 ? 0x88a8 : 0x8100);
        wr_be16(p + n + 2, (uint16_t)(i + 1));
        n += 4;
    }
    wr_be16(p + n, et);
    return n + 2;
}

struct frame {
    uint8_t buf[FRAME_MAX];
    size_t len;  /* captured */
    size_t wire; /* on the wire */
    int link;
};

/* Builds a frame from the input; updates the sending side's sequence. */
FZ_NO_COVERAGE static void build_frame(struct harness *h, struct fz *f, struct frame *fr)
{
    uint8_t who = fz_u8(f);
    int idx = who & 7;
    bool v6 = who & 8;
    bool from_server = who & 16;
    int link = frame_links[(who >> 5) & 7];
    if (link == LINKTYPE_IPV4 && v6) {
        link = LINKTYPE_IPV6;
    }
    uint8_t flags = fz_u8(f);
    uint8_t mode = fz_u8(f);
    struct side *me = from_server ? &h->server[v6][idx] : &h->client[v6][idx];
    struct side *peer = from_server ? &h->client[v6][idx] : &h->server[v6][idx];
    uint32_t seq;
    switch (mode & 3) {
    case 0:
        seq = me->seq;
        break;
    case 1:
        seq = me->seq + (uint32_t)(int32_t)(int16_t)fz_u16(f);
        break;
    case 2:
        seq = fz_u32(f);
        break;
    default:
        seq = me->seq - fz_u8(f);
        break;
    }
    uint32_t ack = peer->seq + (uint32_t)(int32_t)(int16_t)fz_u16(f);
    uint32_t plen = (mode & 0x80) ? fz_u16(f) % 2048 : fz_u8(f);
    uint8_t cut = fz_u8(f);
    h->now += fz_u8(f) * MS;

    uint8_t caddr[16], saddr[16];
    client_addr(v6, idx, caddr);
    server_addr(v6, saddr);
    uint16_t cport = (uint16_t)(40000 + idx);
    uint16_t sport = (mode & 4) ? OTHER_PORT : SERVICE;
    const uint8_t *src = from_server ? saddr : caddr;
    const uint8_t *dst = from_server ? caddr : saddr;
    uint16_t srcport = from_server ? sport : cport;
    uint16_t dstport = from_server ? cport : sport;

    int tags = (link == LINKTYPE_ETHERNET || link == LINKTYPE_LINUX_SLL ||
                link == LINKTYPE_LINUX_SLL2)
                   ? (mode >> 4) & 3
                   : 0;
    uint8_t *p = fr->buf;
    size_t n = put_link(p, link, v6, tags);
    size_t ip = n;
    size_t iphl;
    size_t tcphl = 20 + ((flags & TCP_FLAG_SYN) ? 12 : 0);
    if (!v6) {
        iphl = (mode & 8) ? 20 + 4 * (1 + (plen % 10)) : 20;
        memset(p + ip, 0, iphl);
        p[ip] = (uint8_t)(0x40 | (iphl / 4));
        if (!(mode & 0x40)) {
            wr_be16(p + ip + 2, (uint16_t)(iphl + tcphl + plen));
        }
        wr_be16(p + ip + 6, 0x4000); /* DF */
        p[ip + 8] = 64;
        p[ip + 9] = 6;
        memcpy(p + ip + 12, src, 4);
        memcpy(p + ip + 16, dst, 4);
        for (size_t i = ip + 20; i < ip + iphl; i++) {
            p[i] = 1; /* NOP options */
        }
    } else {
        size_t ext = (mode & 8) ? 1 + plen % 3 : 0;
        iphl = 40 + 8 * ext;
        memset(p + ip, 0, iphl);
        p[ip] = 0x60;
        wr_be16(p + ip + 4, (uint16_t)(iphl - 40 + tcphl + plen));
        p[ip + 7] = 64;
        memcpy(p + ip + 8, src, 16);
        memcpy(p + ip + 24, dst, 16);
        /* hop-by-hop, then destination options, then an atomic fragment
         * header, each 8 bytes, then TCP. */
        static const uint8_t chain[3] = {0, 60, 44};
        p[ip + 6] = ext ? chain[0] : 6;
        for (size_t i = 0; i < ext; i++) {
            uint8_t *eh = p + ip + 40 + 8 * i;
            eh[0] = i + 1 < ext ? chain[i + 1] : 6;
            if (chain[i] != 44) {
                eh[2] = 1; /* PadN of 4 */
                eh[3] = 4;
            }
        }
    }
    size_t th = ip + iphl;
    memset(p + th, 0, tcphl);
    wr_be16(p + th, srcport);
    wr_be16(p + th + 2, dstport);
    wr_be32(p + th + 4, seq);
    wr_be32(p + th + 8, ack);
    p[th + 12] = (uint8_t)((tcphl / 4) << 4);
    p[th + 13] = flags;
    wr_be16(p + th + 14, 65535);
    if (tcphl > 20) {
        p[th + 20] = 2; /* MSS 1460 */
        p[th + 21] = 4;
        wr_be16(p + th + 22, 1460);
        memset(p + th + 24, 1, 8);
    }
    uint32_t first = seq + ((flags & TCP_FLAG_SYN) ? 1u : 0u);
    uint32_t salt = sender_salt(v6 ? 6 : 4, src, srcport);
    size_t pay = th + tcphl;
    for (uint32_t i = 0; i < plen; i++) {
        p[pay + i] = true_byte(salt, first + i);
    }
    fr->len = fr->wire = pay + plen;
    fr->link = link;
    if (cut > 0 && !(mode & 0x40)) {
        fr->len -= cut < fr->len ? cut : fr->len;
    }
    /* The sender's next sequence number moves on. */
    uint32_t end = first + plen + ((flags & TCP_FLAG_FIN) ? 1u : 0u);
    if ((flags & TCP_FLAG_SYN) || (int32_t)(end - me->seq) > 0) {
        me->seq = end;
    }
}

static void feed(struct harness *h, const uint8_t *pkt, size_t caplen,
                 size_t wirelen, int link)
{
    /* An exact-size copy, so that reads past the record are caught. */
    uint8_t *copy = malloc(caplen ? caplen : 1);
    FZ_CHECK(copy != NULL, "out of memory");
    if (caplen > 0) {
        memcpy(copy, pkt, caplen);
    }
    enum decode_verdict v = engine_packet(h->e, link, h->now, copy,
                                          (uint32_t)caplen, (uint32_t)wirelen);
    FZ_TRACE("record link %d caplen %zu wirelen %zu: %s", link, caplen,
             wirelen, decode_verdict_name(v));
    FZ_CHECK(v >= DECODE_TCP && v < DECODE_VERDICT_COUNT, "verdict %d", v);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    struct harness *h = calloc(1, sizeof(*h));
    FZ_CHECK(h != NULL, "out of memory");
    h->live.next = h->live.prev = &h->live;
    h->content_ok = true;
    h->now = 1700000000ULL * 1000000000ULL;

    uint8_t c0 = fz_u8(&f);
    struct service_addr svc[2];
    memset(svc, 0, sizeof(svc));
    h->cfg.port = (c0 & 3) == 3 ? 0 : SERVICE;
    svc[0].family = 4;
    server_addr(0, svc[0].addr);
    svc[1].family = 6;
    server_addr(1, svc[1].addr);
    if (c0 & 4) {
        h->cfg.service_addrs = svc;
        h->cfg.n_service_addrs = (c0 & 32) ? 2 : 1;
    }
    h->cfg.closed_keep_ns = (c0 & 8) ? 5000 * MS : 0;
    h->cfg.idle_timeout_ns = (c0 & 16) ? 3000 * MS : 0;
    h->cfg.closing_timeout_ns = 2000 * MS;
    uint8_t c1 = fz_u8(&f);
    h->cfg.max_flows = (c0 & 128) ? 100000 : 1 + (size_t)(c1 & 15);
    h->cfg.skip_loopback_clients = c1 & 16;
    if (c1 & 32) {
        h->cfg.flow_state_budget = 3 * ENGINE_FLOW_COST + 600;
    }
    h->cfg.flow_data_cost = (c1 & 64) ? 200 : 0;
    h->cfg.flow_queue_cap = 64 + (size_t)fz_u16(&f);
    h->cfg.queue_budget = 4 * (size_t)fz_u16(&f);
    h->cfg.gap_timeout_ns = (1 + (uint64_t)fz_u8(&f)) * MS;
    h->cfg.rtx_timeout_ns = (uint64_t)fz_u8(&f) * 10 * MS;
    h->cfg.hash_seed = 0x1234567890abcdefULL;
    h->cfg.reasm_server = (c1 & 128) != 0;
    for (int fam = 0; fam < 2; fam++) {
        for (int i = 0; i < N_CLIENTS; i++) {
            h->client[fam][i].seq = 1000u * (uint32_t)(i + 1) - 1u;
            h->server[fam][i].seq = 0x80000000u + 77u * (uint32_t)i;
        }
    }
    struct engine_events ev = {
        .open = ev_open,
        .data = ev_data,
        .gap = ev_gap,
        .end = ev_end,
        .ctx = h,
        .server_data = ev_server_data,
        .server_gap = ev_server_gap,
        .server_end = ev_server_end,
    };
    h->e = engine_new(&h->cfg, &ev);

    struct frame *fr = malloc(sizeof(*fr));
    FZ_CHECK(fr != NULL, "out of memory");
    for (int n = 0; n < MAX_OPS && fz_left(&f) > 0; n++) {
        uint8_t op = fz_u8(&f);
        switch (op & 7) {
        case 0:
        case 1:
        case 2:
        case 3: {
            build_frame(h, &f, fr);
            feed(h, fr->buf, fr->len, fr->wire, fr->link);
            break;
        }
        case 4:
            h->now += fz_u16(&f) * MS;
            engine_advance(h->e, h->now);
            break;
        case 5: {
            int link = raw_links[fz_u8(&f) & 7];
            size_t len;
            const uint8_t *raw = fz_bytes(&f, fz_u16(&f) % 2048, &len);
            h->content_ok = false;
            feed(h, raw, len, len + (op >> 3), link);
            break;
        }
        case 6: {
            build_frame(h, &f, fr);
            uint16_t pos = fz_u16(&f);
            uint8_t val = fz_u8(&f);
            if (fr->len > 0) {
                fr->buf[pos % fr->len] = val;
            }
            h->content_ok = false;
            feed(h, fr->buf, fr->len, fr->wire, fr->link);
            break;
        }
        default:
            if (((op >> 3) & 3) == 2) {
                engine_set_service_addrs(h->e, svc, (op & 32) ? 2 : 1);
            } else if (((op >> 3) & 3) == 3) {
                engine_set_service_addrs(h->e, NULL, 0);
            } else {
                engine_advance(h->e, h->now + fz_u16(&f) * 1000 * MS);
                h->now = engine_now(h->e);
            }
            break;
        }
        check_stats(h);
    }
    free(fr);

    if (c0 & 64) {
        /* Freed without finishing: nothing more is reported. */
        engine_free(h->e);
        while (h->live.next != &h->live) {
            struct tracker *t = h->live.next;
            t->prev->next = t->next;
            t->next->prev = t->prev;
            free(t);
        }
    } else {
        engine_finish(h->e);
        check_stats(h);
        FZ_CHECK(h->opens == h->ends, "%llu flows opened, %llu ended",
                 (unsigned long long)h->opens, (unsigned long long)h->ends);
        FZ_CHECK(h->live.next == &h->live, "a tracker is left");
        FZ_CHECK(engine_queued_bytes(h->e) == 0, "%zu bytes queued at the end",
                 engine_queued_bytes(h->e));
        FZ_CHECK(engine_flow_state_bytes(h->e) == 0,
                 "%zu bytes of flow state at the end",
                 engine_flow_state_bytes(h->e));
        FZ_CHECK(engine_stats(h->e)->flows_open == 0, "flows open at the end");
        engine_free(h->e);
    }
    free(h);
    return 0;
}
