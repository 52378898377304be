/*
 * An address of the service being tapped: the engine matches inbound
 * segments against it, the options and the Kubernetes tap fill it. Its
 * own header so that those users need not include the engine.
 */
#ifndef TAPMIRROR_ADDR_H
#define TAPMIRROR_ADDR_H

#include <stdbool.h>
#include <stdint.h>

/* An address of the service: inbound segments must be sent to one. */
struct service_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
    /* A service mesh's sidecar stands in front of it (Istio, Linkerd):
     * connections from other hosts carry the mesh's TLS, and the
     * plaintext clients are the sidecar's own connections, from the
     * loopback or from a service address. Only those are inbound, to
     * this address or, on the loopback, to any. */
    bool sidecar_hop;
};

#endif
