#include "pktfilter.h"

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decode.h"
#include "core/util.h"

#define MAX_LINKS 16

struct compiled {
    int linktype;
    bool usable;
    struct bpf_program prog;
    char error[256];
};

struct pktfilter {
    const char *expr;
    struct compiled links[MAX_LINKS];
    size_t n;
};

/* libpcap takes DLT_ values; they match the LINKTYPE_ values in files
 * except for raw IP. */
static int to_dlt(int linktype)
{
    return linktype == LINKTYPE_RAW ? DLT_RAW : linktype;
}

const char *pktfilter_link_name(int linktype)
{
    const char *name = pcap_datalink_val_to_name(to_dlt(linktype));
    return name != NULL ? name : "UNKNOWN";
}

int pktfilter_check(const char *expr, char *err, size_t errlen)
{
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
    struct bpf_program prog;
    if (dead == NULL) {
        return 0;
    }
    int rc = pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN);
    if (rc < 0) {
        snprintf(err, errlen, "invalid --filter '%s': %s", expr,
                 pcap_geterr(dead));
    } else {
        pcap_freecode(&prog);
    }
    pcap_close(dead);
    return rc < 0 ? -1 : 0;
}

struct pktfilter *pktfilter_new(const char *expr)
{
    struct pktfilter *f = tm_xcalloc(1, sizeof(*f));
    f->expr = expr;
    return f;
}

void pktfilter_free(struct pktfilter *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (f->links[i].usable) {
            pcap_freecode(&f->links[i].prog);
        }
    }
    free(f);
}

static struct compiled *compiled_for(struct pktfilter *f, int linktype)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->links[i].linktype == linktype) {
            return &f->links[i];
        }
    }
    if (f->n == MAX_LINKS) {
        return NULL;
    }
    struct compiled *c = &f->links[f->n++];
    c->linktype = linktype;
    pcap_t *dead = pcap_open_dead(to_dlt(linktype), 262144);
    if (dead == NULL) {
        snprintf(c->error, sizeof(c->error), "out of memory");
        return c;
    }
    c->usable =
        pcap_compile(dead, &c->prog, f->expr, 1, PCAP_NETMASK_UNKNOWN) == 0;
    if (!c->usable) {
        snprintf(c->error, sizeof(c->error), "%s", pcap_geterr(dead));
    }
    pcap_close(dead);
    return c;
}

int pktfilter_match(struct pktfilter *f, int linktype, const uint8_t *data,
                    uint32_t caplen, uint32_t wirelen, char *err,
                    size_t errlen)
{
    struct compiled *c = compiled_for(f, linktype);
    if (c == NULL || !c->usable) {
        const char *name = pcap_datalink_val_to_name(to_dlt(linktype));
        snprintf(err, errlen, "--filter cannot apply to %s packets: %s",
                 name ? name : "these",
                 c ? c->error : "too many link types");
        return -1;
    }
    struct pcap_pkthdr h;
    memset(&h, 0, sizeof(h));
    h.caplen = caplen;
    h.len = wirelen;
    return pcap_offline_filter(&c->prog, &h, data) != 0 ? 1 : 0;
}
