#include "intake.h"

#include <stdio.h>
#include <unistd.h>

#include <uv.h>

#include "core/decode.h"
#include "io/replay.h"

struct engine_config engine_config_from_options(const struct tm_options *o)
{
    return (struct engine_config){
        .port = o->port,
        .service_addrs = o->service,
        .n_service_addrs = o->n_service,
        .gap_timeout_ns = o->gap_timeout_ns,
        .rtx_timeout_ns = o->rtx_timeout_ns,
        .idle_timeout_ns = o->idle_timeout_ns,
        .closing_timeout_ns = CLOSING_TIMEOUT_NS,
        .closed_keep_ns = CLOSED_KEEP_NS,
        .flow_queue_cap = o->flow_buffer,
        /* The replay's queues count the reassembly queues against the
         * whole --max-buffer (replay_set_other_usage): these get half. */
        .queue_budget = o->max_buffer / 2,
        .max_flows = o->max_flows,
        /* Flow state and the replay's sessions share --max-buffer with
         * the queues: half of it, as the reassembly queues have. */
        .flow_state_budget = o->max_buffer / 2,
        .flow_data_cost = o->n_targets > 0
                              ? replay_session_size(o->n_targets)
                              : 0,
        /* In a pod, loopback clients are sidecar hops of connections
         * already seen arriving on the pod's own address. */
        .skip_loopback_clients = o->cmd == CMD_MIRROR,
        /* --compare pairs production's answers with the local ones. */
        .reasm_server = o->compare,
        .hash_seed = intake_hash_seed(),
    };
}

uint64_t intake_hash_seed(void)
{
    return uv_hrtime() ^ ((uint64_t)getpid() << 32);
}

static void note_link(struct intake *in, int linktype)
{
    if (in->link_name == NULL) {
        in->link_name = pktfilter_link_name(linktype);
    }
}

int intake_header(struct intake *in, const struct cap_item *it, char *err,
                  size_t errlen)
{
    if (it->linktype < 0) {
        return 0;
    }
    if (!in->any_link && !decode_link_supported(it->linktype)) {
        snprintf(err, errlen,
                 "%s: link type %s (%d) is not supported; tapmirror "
                 "decodes EN10MB, LINUX_SLL, LINUX_SLL2, RAW, IPV4, "
                 "IPV6, NULL and LOOP captures",
                 in->name, pktfilter_link_name(it->linktype), it->linktype);
        return -1;
    }
    note_link(in, it->linktype);
    return 0;
}

enum intake_verdict intake_packet(struct intake *in,
                                  const struct cap_item *it, char *err,
                                  size_t errlen)
{
    if (!in->any_link && !decode_link_supported(it->linktype)) {
        snprintf(err, errlen,
                 "%s: a packet has link type %s (%d), which tapmirror "
                 "cannot decode",
                 in->name, pktfilter_link_name(it->linktype), it->linktype);
        return INTAKE_FAILED;
    }
    note_link(in, it->linktype);
    in->packets++;
    in->bytes += it->caplen;
    if (in->filter == NULL) {
        return INTAKE_PASSED;
    }
    int m = pktfilter_match(in->filter, it->linktype, it->data, it->caplen,
                            it->wirelen, err, errlen);
    if (m < 0) {
        return INTAKE_FAILED;
    }
    if (m == 0) {
        in->filtered++;
        return INTAKE_FILTERED;
    }
    return INTAKE_PASSED;
}

void intake_to_engine(struct intake *in, const struct cap_item *it)
{
    engine_packet(in->engine, it->linktype, it->ts_ns, it->data, it->caplen,
                  it->wirelen);
}
