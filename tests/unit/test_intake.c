/* What run and summary share: the engine configuration from the options,
 * and one record's way to the engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/cli.h"
#include "cmd/intake.h"
#include "io/replay.h"
#include "pktbuild.h"

#define TCP_SYN 0x02
#define TCP_ACK 0x10
#define MIB (1024ull * 1024)

/* Options from "tapmirror" and the NULL-terminated `args`; the argv
 * copies stay allocated (the options borrow them) until the test ends. */
struct parsed {
    struct tm_options o;
    char *argv[32];
    int argc;
};

static struct parsed *parse(const char *const *args)
{
    struct parsed *p = calloc(1, sizeof(*p));
    char err[512];
    assert_non_null(p);
    p->argv[p->argc++] = strdup("tapmirror");
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(p->argc < 31);
        p->argv[p->argc++] = strdup(args[i]);
    }
    enum cli_result rc = cli_parse(p->argc, p->argv, &p->o, stdout, err,
                                   sizeof(err));
    if (rc != CLI_RUN) {
        fail_msg("%s", err);
    }
    return p;
}

#define PARSE(...) parse((const char *const[]){__VA_ARGS__, NULL})

static void parsed_free(struct parsed *p)
{
    for (int i = 0; i < p->argc; i++) {
        free(p->argv[i]);
    }
    free(p);
}

/* summary has no --max-buffer: it splits the default the way a replay of
 * the same capture does, so it reports the gaps that replay would skip. */
static void test_summary_configures_the_engine_as_replay(void **state)
{
    (void)state;
    struct parsed *sp = PARSE("summary", "in.pcap", "-p", "80");
    struct parsed *rp = PARSE("replay", "in.pcap", "-p", "80", "--to",
                              ":9000");
    struct engine_config s = engine_config_from_options(&sp->o);
    struct engine_config r = engine_config_from_options(&rp->o);
    assert_int_equal(s.queue_budget, sp->o.max_buffer / 2);
    assert_int_equal(s.flow_state_budget, sp->o.max_buffer / 2);
    assert_int_equal(s.queue_budget, r.queue_budget);
    assert_int_equal(s.flow_state_budget, r.flow_state_budget);
    assert_int_equal(s.flow_queue_cap, r.flow_queue_cap);
    assert_int_equal(s.max_flows, r.max_flows);
    assert_int_equal(s.gap_timeout_ns, r.gap_timeout_ns);
    assert_int_equal(s.rtx_timeout_ns, r.rtx_timeout_ns);
    assert_int_equal(s.idle_timeout_ns, r.idle_timeout_ns);
    assert_int_equal(s.closing_timeout_ns, CLOSING_TIMEOUT_NS);
    assert_int_equal(r.closing_timeout_ns, CLOSING_TIMEOUT_NS);
    assert_int_equal(s.closed_keep_ns, CLOSED_KEEP_NS);
    assert_int_equal(r.closed_keep_ns, CLOSED_KEEP_NS);
    assert_int_equal(s.port, 80);
    /* Only a replay keeps a session for each flow that carries data. */
    assert_int_equal(s.flow_data_cost, 0);
    assert_int_equal(r.flow_data_cost, replay_session_size(1));
    assert_false(s.skip_loopback_clients);
    assert_false(r.skip_loopback_clients);
    parsed_free(sp);
    parsed_free(rp);
}

static void test_config_follows_the_run_options(void **state)
{
    (void)state;
    struct parsed *rp = PARSE("replay", "in.pcap", "-p", "8080",
                              "--max-buffer", "64MiB", "--flow-buffer",
                              "1MiB", "--max-flows", "500", "--to", ":9000",
                              "--to", ":9001", "--service-ip", "10.0.0.2");
    struct engine_config r = engine_config_from_options(&rp->o);
    assert_int_equal(r.port, 8080);
    assert_int_equal(r.queue_budget, 32 * MIB);
    assert_int_equal(r.flow_state_budget, 32 * MIB);
    assert_int_equal(r.flow_queue_cap, 1 * MIB);
    assert_int_equal(r.max_flows, 500);
    /* Each flow that carries data holds a replay session per target. */
    assert_int_equal(r.flow_data_cost, replay_session_size(2));
    assert_int_equal(r.n_service_addrs, 1);
    assert_ptr_equal(r.service_addrs, rp->o.service);
    assert_false(r.skip_loopback_clients);

    /* Capture alone keeps no replay sessions. */
    struct parsed *cp = PARSE("capture", "-i", "lo", "-p", "8080");
    struct engine_config c = engine_config_from_options(&cp->o);
    assert_int_equal(c.flow_data_cost, 0);
    assert_int_equal(c.queue_budget, cp->o.max_buffer / 2);
    parsed_free(cp);

    /* In a pod, loopback clients are sidecar hops. */
    struct parsed *mp = PARSE("mirror", "pod/web", "-p", "8080");
    struct engine_config m = engine_config_from_options(&mp->o);
    assert_true(m.skip_loopback_clients);
    assert_int_equal(m.queue_budget, mp->o.max_buffer / 2);

    /* The flow table's key is fresh for every engine. */
    struct engine_config again = engine_config_from_options(&mp->o);
    assert_true(m.hash_seed != again.hash_seed);
    parsed_free(rp);
    parsed_free(mp);
}

/* A packet record of `linktype` carrying one TCP segment to `dport`. */
static struct cap_item packet(uint8_t *buf, int linktype, uint16_t dport)
{
    static const uint8_t payload[] = "GET / HTTP/1.1\r\n\r\n";
    struct pb_pkt p = pb_tcp4(40000, dport, 1001, 1, TCP_ACK, payload,
                              sizeof(payload) - 1);
    size_t len = pb_build(buf, linktype == 147 ? PB_LINK_ETHERNET : linktype,
                          &p, NULL);
    struct cap_item it = {
        .kind = CAP_ITEM_PACKET,
        .raw = buf,
        .raw_len = len,
        .linktype = linktype,
        .ts_ns = 1700000000ull * 1000000000ull,
        .caplen = (uint32_t)len,
        .wirelen = (uint32_t)len,
        .data = buf,
    };
    return it;
}

static void test_link_types_a_run_cannot_decode(void **state)
{
    (void)state;
    uint8_t buf[256];
    char err[512] = "";
    struct intake in = {.name = "in.pcapng"};
    struct cap_item it = packet(buf, 147, 80);
    assert_int_equal(intake_packet(&in, &it, err, sizeof(err)),
                     INTAKE_FAILED);
    assert_non_null(strstr(err, "in.pcapng: a packet has link type"));
    assert_non_null(strstr(err, "(147), which tapmirror cannot decode"));
    assert_int_equal(in.packets, 0);
    assert_null(in.link_name);

    struct cap_item hdr = {.kind = CAP_ITEM_HEADER, .linktype = 147};
    assert_int_equal(intake_header(&in, &hdr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "in.pcapng: link type"));
    assert_non_null(strstr(err, "(147) is not supported"));

    /* summary counts such a packet and lets the engine count it too. */
    struct intake any = {.name = "in.pcapng", .any_link = true};
    assert_int_equal(intake_header(&any, &hdr, err, sizeof(err)), 0);
    assert_int_equal(intake_packet(&any, &it, err, sizeof(err)),
                     INTAKE_PASSED);
    assert_int_equal(any.packets, 1);
    assert_int_equal(any.bytes, it.caplen);
    assert_non_null(any.link_name);

    /* The first header names the link type, before any packet. */
    struct intake eth = {.name = "in.pcap"};
    struct cap_item eth_hdr = {.kind = CAP_ITEM_HEADER,
                               .linktype = PB_LINK_ETHERNET};
    assert_int_equal(intake_header(&eth, &eth_hdr, err, sizeof(err)), 0);
    assert_string_equal(eth.link_name, "EN10MB");
}

static void test_filter_and_counters(void **state)
{
    (void)state;
    uint8_t a[256], b[256];
    char err[512] = "";
    struct intake in = {.name = "in.pcap",
                        .filter = pktfilter_new("tcp dst port 80")};
    struct cap_item to80 = packet(a, PB_LINK_ETHERNET, 80);
    struct cap_item to81 = packet(b, PB_LINK_ETHERNET, 81);
    assert_int_equal(intake_packet(&in, &to80, err, sizeof(err)),
                     INTAKE_PASSED);
    assert_int_equal(intake_packet(&in, &to81, err, sizeof(err)),
                     INTAKE_FILTERED);
    assert_int_equal(in.packets, 2);
    assert_int_equal(in.bytes, to80.caplen + to81.caplen);
    assert_int_equal(in.filtered, 1);
    assert_string_equal(in.link_name, "EN10MB");
    pktfilter_free(in.filter);

    /* A filter that cannot apply to the packet's link type fails; the
     * packet is counted as read, not as filtered. */
    struct intake raw = {.name = "in.pcap",
                         .filter = pktfilter_new("ether host 1:2:3:4:5:6")};
    struct cap_item r = packet(a, PB_LINK_RAW, 80);
    err[0] = '\0';
    assert_int_equal(intake_packet(&raw, &r, err, sizeof(err)),
                     INTAKE_FAILED);
    assert_true(err[0] != '\0');
    assert_int_equal(raw.packets, 1);
    assert_int_equal(raw.filtered, 0);
    pktfilter_free(raw.filter);
}

static void test_to_engine(void **state)
{
    (void)state;
    uint8_t buf[256];
    char err[512];
    struct parsed *sp = PARSE("summary", "in.pcap", "-p", "80");
    struct engine_config ec = engine_config_from_options(&sp->o);
    struct engine_events ev = {NULL, NULL, NULL, NULL, NULL, NULL};
    struct intake in = {.engine = engine_new(&ec, &ev), .name = "in.pcap"};
    struct cap_item it = packet(buf, PB_LINK_ETHERNET, 80);
    assert_int_equal(intake_packet(&in, &it, err, sizeof(err)),
                     INTAKE_PASSED);
    intake_to_engine(&in, &it);
    assert_int_equal(engine_stats(in.engine)->packets, 1);
    assert_int_equal(engine_stats(in.engine)->decode[DECODE_TCP], 1);
    assert_int_equal(engine_stats(in.engine)->inbound, 1);
    engine_free(in.engine);
    parsed_free(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_configures_the_engine_as_replay),
        cmocka_unit_test(test_config_follows_the_run_options),
        cmocka_unit_test(test_link_types_a_run_cannot_decode),
        cmocka_unit_test(test_filter_and_counters),
        cmocka_unit_test(test_to_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
