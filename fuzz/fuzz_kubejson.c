/*
 * fuzz_kubejson: the readers of what kubectl prints (src/kubejson.c),
 * which treat everything from the cluster as untrusted.
 *
 * The input is one document (JSON, or kubectl's standard error text). It
 * goes, as a buffer of exactly its length (no terminating NUL: the
 * readers take a length), through kube_parse_version,
 * kube_parse_deployment, kube_parse_pod, kube_parse_pod_list and
 * kube_pod_with_tap, and, NUL-terminated, through kube_classify and
 * kube_first_line (with output buffers of several sizes, down to 1).
 *
 * Checks: each reader returns 0 or -1, and -1 comes with a one-line
 * message; every string it fills is terminated within its field; counts
 * stay within their arrays; pod and deployment names are DNS-1123
 * subdomains (pod names are passed back to kubectl as arguments), a node
 * name and a default container empty or DNS-1123 names; a
 * deployment's selector (handed to kubectl -l) holds only label
 * characters, ',', '=', '!', '(', ')' and spaces and is never empty; a pod the
 * tap was added to (kube_pod_with_tap) parses back with the tap, its image and
 * its target; kube_classify's result is a known value. Text that may be
 * shown on a terminal (every message, kube_classify's, kube_first_line's
 * and kube_error_line's output, a pod's phase, the tap's image, target,
 * reason and message) is terminated, well-formed UTF-8 and holds no C0,
 * DEL or C1 control (fz_unsafe_text()); a pod list that leaves pods out
 * says why.
 */
#include "fuzz_common.h"

#include <cjson/cJSON.h>

#include "kube/kubejson.h"
#include "core/util.h"

/* Whether spec.selector.matchLabels is there but not an object (see
 * corpus/kubejson/crash-deployment-matchlabels-array). */
static bool matchlabels_not_object(const char *doc, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(doc, len);
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(spec, "selector");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(sel, "matchLabels");
    bool bad = ml != NULL && !cJSON_IsObject(ml);
    cJSON_Delete(root);
    return bad;
}

static void check_str(const char *s, size_t size, const char *what)
{
    FZ_CHECK(memchr(s, '\0', size) != NULL, "%s is not terminated", what);
}

static void check_err(int rc, const char *err, size_t errlen)
{
    FZ_CHECK(rc == 0 || rc == -1, "result %d", rc);
    if (rc < 0) {
        FZ_CHECK(memchr(err, '\0', errlen) != NULL && err[0] != '\0',
                 "failure without a message");
        FZ_CHECK(strchr(err, '\n') == NULL, "multi-line message: %s", err);
        FZ_CHECK_SHOWN(err, "a message");
    }
}

static void check_pod(const struct kube_pod *p)
{
    check_str(p->name, sizeof(p->name), "name");
    check_str(p->ns, sizeof(p->ns), "namespace");
    check_str(p->uid, sizeof(p->uid), "uid");
    check_str(p->phase, sizeof(p->phase), "phase");
    check_str(p->resource_version, sizeof(p->resource_version),
              "resourceVersion");
    check_str(p->default_container, sizeof(p->default_container),
              "default container");
    check_str(p->tap_image, sizeof(p->tap_image), "tap image");
    check_str(p->tap_target, sizeof(p->tap_target), "tap target");
    check_str(p->tap_command, sizeof(p->tap_command), "tap command");
    check_str(p->tap_excess, sizeof(p->tap_excess), "tap excess");
    if (p->has_tap) {
        /* The comparison's text is one printable line. */
        char why[512];
        enum kube_tap_match m = kube_tap_compare(
            p, "docker.io/nicolaka/netshoot:v0.16", "app", why, sizeof(why));
        FZ_CHECK(m >= KUBE_TAP_SAME && m <= KUBE_TAP_EXCESS, "match %d",
                 (int)m);
        FZ_CHECK((m == KUBE_TAP_SAME) == (why[0] == '\0'),
                 "match %d with \"%s\"", (int)m, why);
        for (const char *q = why; *q; q++) {
            FZ_CHECK(*q >= 0x20 && *q < 0x7f, "unprintable comparison: %s",
                     why);
        }
    }
    check_str(p->tap.reason, sizeof(p->tap.reason), "tap reason");
    check_str(p->tap.message, sizeof(p->tap.message), "tap message");
    FZ_CHECK_SHOWN(p->phase, "the phase");
    FZ_CHECK_SHOWN(p->tap_image, "the tap image");
    FZ_CHECK_SHOWN(p->tap_target, "the tap target");
    FZ_CHECK_SHOWN(p->tap.reason, "the tap's reason");
    FZ_CHECK_SHOWN(p->tap.message, "the tap's message");
    if (!fz_tolerate("kubejson-names")) {
        /* Names go back to kubectl as arguments (kubectl exec -i POD): each
         * must pass the command line's DNS-1123 check, so none starts with '-'.
         */
        FZ_CHECK(tm_dns1123_name(p->name, 253), "pod name \"%s\" was accepted",
                 p->name);
    }
    /* A node name goes back to kubectl (get node NAME), a default
     * container into messages: empty, or a DNS-1123 name. */
    FZ_CHECK(p->node_name[0] == '\0' ||
                 tm_dns1123_name(p->node_name, sizeof(p->node_name) - 1),
             "node name \"%s\" was accepted", p->node_name);
    FZ_CHECK(p->default_container[0] == '\0' ||
                 tm_dns1123_name(p->default_container, 63),
             "default container \"%s\" was accepted", p->default_container);
    FZ_CHECK(p->n_containers <= KUBE_MAX_CONTAINERS, "%zu containers",
             p->n_containers);
    for (size_t i = 0; i < p->n_containers; i++) {
        check_str(p->containers[i], sizeof(p->containers[i]), "container");
    }
    FZ_CHECK(p->n_ips <= KUBE_MAX_IPS, "%zu addresses", p->n_ips);
    for (size_t i = 0; i < p->n_ips; i++) {
        check_str(p->ips[i], sizeof(p->ips[i]), "address");
    }
    FZ_CHECK(p->tap.state >= KUBE_STATE_NONE &&
                 p->tap.state <= KUBE_STATE_TERMINATED,
             "tap state %d", (int)p->tap.state);
}

static bool selector_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("-_./=,!() ", c) != NULL;
}

static void check_deployment(const struct kube_deployment *d)
{
    check_str(d->name, sizeof(d->name), "deployment name");
    check_str(d->selector, sizeof(d->selector), "selector");
    check_str(d->default_container, sizeof(d->default_container),
              "default container");
    if (!fz_tolerate("kubejson-names")) {
        FZ_CHECK(tm_dns1123_name(d->name, 253),
                 "deployment name \"%s\" was accepted", d->name);
    }
    FZ_CHECK(d->default_container[0] == '\0' ||
                 tm_dns1123_name(d->default_container, 63),
             "default container \"%s\" was accepted", d->default_container);
    FZ_CHECK(d->selector[0] != '\0', "an empty selector was accepted");
    for (const char *c = d->selector; *c; c++) {
        FZ_CHECK(selector_char(*c), "selector character %02x in \"%s\"",
                 (unsigned char)*c, d->selector);
    }
    FZ_CHECK(d->n_containers >= 1 && d->n_containers <= KUBE_MAX_CONTAINERS,
             "%zu containers", d->n_containers);
    for (size_t i = 0; i < d->n_containers; i++) {
        check_str(d->containers[i], sizeof(d->containers[i]), "container");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly `size` bytes, no NUL after them. */
    char *doc = malloc(size ? size : 1);
    FZ_CHECK(doc != NULL, "out of memory");
    if (size > 0) {
        memcpy(doc, data, size);
    }
    char err[256];
    int rc;

    int cmin = -2, smin = -2;
    memset(err, 'x', sizeof(err));
    rc = kube_parse_version(doc, size, &cmin, &smin, err, sizeof(err));
    check_err(rc, err, sizeof(err));
    if (rc == 0) {
        FZ_CHECK(cmin >= 0 && smin >= -1, "minor versions %d %d", cmin, smin);
    }

    struct kube_deployment *d = malloc(sizeof(*d));
    FZ_CHECK(d != NULL, "out of memory");
    if (!(fz_tolerate("kubejson-matchlabels") &&
          matchlabels_not_object(doc, size))) {
        memset(err, 'x', sizeof(err));
        rc = kube_parse_deployment(doc, size, d, err, sizeof(err));
        check_err(rc, err, sizeof(err));
        if (rc == 0) {
            check_deployment(d);
        }
    }
    free(d);

    struct kube_pod *pod = malloc(sizeof(*pod));
    FZ_CHECK(pod != NULL, "out of memory");
    memset(err, 'x', sizeof(err));
    rc = kube_parse_pod(doc, size, pod, err, sizeof(err));
    check_err(rc, err, sizeof(err));
    bool pod_ok = rc == 0;
    if (pod_ok) {
        check_pod(pod);
    }

    struct kube_pod *pods = NULL;
    size_t n = 12345, refused = 54321;
    memset(err, 'x', sizeof(err));
    rc = kube_parse_pod_list(doc, size, &pods, &n, &refused, err,
                             sizeof(err));
    check_err(rc, err, sizeof(err));
    if (rc == 0 && refused > 0) {
        /* Pods left out: the reason for the first is there. */
        check_err(-1, err, sizeof(err));
    }
    if (rc == 0) {
        FZ_CHECK(pods != NULL, "no pod array");
        for (size_t i = 0; i < n; i++) {
            check_pod(&pods[i]);
        }
    } else {
        FZ_CHECK(pods == NULL && n == 0 && refused == 0,
                 "failure left a pod array");
    }
    free(pods);

    /* The tap added to a pod is there when the pod is read back. */
    static const char image[] = "docker.io/nicolaka/netshoot:v0.16";
    static const char target[] = "app";
    memset(err, 'x', sizeof(err));
    /* Either profile's tap is tapmirror's own. */
    enum kube_tap_profile profile =
        size % 2 ? KUBE_TAP_BASELINE : KUBE_TAP_NETRAW;
    char *with = kube_pod_with_tap(doc, size, image, target, profile, err,
                                   sizeof(err));
    if (with == NULL) {
        check_err(-1, err, sizeof(err));
    } else {
        struct kube_pod *back = malloc(sizeof(*back));
        FZ_CHECK(back != NULL, "out of memory");
        rc = kube_parse_pod(with, strlen(with), back, err, sizeof(err));
        check_err(rc, err, sizeof(err));
        if (pod_ok) {
            FZ_CHECK(rc == 0, "the pod with the tap does not parse: %s", err);
        }
        if (rc == 0) {
            check_pod(back);
            /* The tap is appended, and the last one named like it wins. */
            FZ_CHECK(back->has_tap && strcmp(back->tap_image, image) == 0 &&
                         strcmp(back->tap_target, target) == 0,
                     "added tap: %d, image \"%s\", target \"%s\"",
                     back->has_tap, back->tap_image, back->tap_target);
            /* tapmirror's own tap passes its own check. */
            char why[512];
            FZ_CHECK(kube_tap_compare(back, image, target, why,
                                      sizeof(why)) == KUBE_TAP_SAME,
                     "the added tap differs: %s", why);
            FZ_CHECK(back->tap_profile == profile,
                     "the added tap reads back as profile %d, not %d",
                     (int)back->tap_profile, (int)profile);
        }
        free(back);
        free(with);
    }
    free(pod);

    /* kubectl's standard error, as text. */
    char *text = malloc(size + 1);
    FZ_CHECK(text != NULL, "out of memory");
    if (size > 0) {
        memcpy(text, data, size);
    }
    text[size] = '\0';
    static const size_t lens[] = {1, 2, 16, 512};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char *out = malloc(lens[i]);
        FZ_CHECK(out != NULL, "out of memory");
        memset(out, 'x', lens[i]);
        kube_first_line(text, out, lens[i]);
        FZ_CHECK(memchr(out, '\0', lens[i]) != NULL,
                 "first line not terminated");
        FZ_CHECK_SHOWN(out, "the first line");
        memset(out, 'x', lens[i]);
        kube_error_line(text, out, lens[i]);
        FZ_CHECK(memchr(out, '\0', lens[i]) != NULL,
                 "error line not terminated");
        FZ_CHECK_SHOWN(out, "the error line");
        memset(out, 'x', lens[i]);
        enum kube_error e =
            kube_classify(text, size & 1 ? "pod web-0" : NULL,
                          size & 2 ? "default" : NULL, out, lens[i]);
        FZ_CHECK(e >= KUBE_ERR_UNKNOWN && e <= KUBE_ERR_POD_COMPLETED,
                 "classification %d", (int)e);
        FZ_CHECK(memchr(out, '\0', lens[i]) != NULL, "message not terminated");
        FZ_CHECK_SHOWN(out, "kube_classify's message");
        free(out);
    }
    free(text);
    free(doc);
    return 0;
}
