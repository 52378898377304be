/* The reference "bare libpcap read loop" of the benchmarks.
 *
 *     bench_pcapread FILE
 *
 * Opens FILE with pcap_open_offline, reads every record with pcap_next_ex
 * and touches its bytes (one byte in every 64, plus the last one, so every
 * cache line of the record is loaded), then prints one line:
 *
 *     packets N bytes B sum S
 *
 * B is the sum of the captured lengths. This is the least work any tool
 * that reads the capture through libpcap has to do, and the denominator of
 * the benchmark's throughput ratio. Exit status 0, or 1 on an error. */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_pcapread FILE\n");
        return 2;
    }
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], errbuf);
    if (p == NULL) {
        fprintf(stderr, "bench_pcapread: %s\n", errbuf);
        return 1;
    }
    unsigned long long packets = 0, bytes = 0;
    uint64_t sum = 0;
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        bytes += h->caplen;
        for (bpf_u_int32 i = 0; i < h->caplen; i += 64) {
            sum += data[i];
        }
        if (h->caplen > 0) {
            sum += data[h->caplen - 1];
        }
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "bench_pcapread: %s: %s\n", argv[1], pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    printf("packets %llu bytes %llu sum %llu\n", packets, bytes,
           (unsigned long long)sum);
    return 0;
}
