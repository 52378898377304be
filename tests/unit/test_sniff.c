/* Unit tests of sniff.c: a connection's protocol from its first bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/sniff.h"

/* The first bytes of a ClientHello as OpenSSL 3 sends it (TLS 1.3, the
 * record's legacy version 3.1, a 512-byte record). */
static const uint8_t client_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                       0x00, 0x01, 0xfc, 0x03, 0x03};

static void test_client_hello_is_tls(void **state)
{
    (void)state;
    assert_int_equal(sniff_first_bytes(client_hello, sizeof(client_hello)),
                     SNIFF_TLS);
    /* However little of it the first segment carried. */
    for (size_t n = 1; n <= sizeof(client_hello); n++) {
        assert_int_equal(sniff_first_bytes(client_hello, n), SNIFF_TLS);
    }
    /* SSL 3.0 and TLS 1.0 to 1.3 record versions. */
    for (uint8_t minor = 0; minor <= 4; minor++) {
        uint8_t b[6] = {0x16, 0x03, minor, 0x00, 0x40, 0x01};
        assert_int_equal(sniff_first_bytes(b, sizeof(b)), SNIFF_TLS);
    }
    /* The largest record a peer may send. */
    const uint8_t big[] = {0x16, 0x03, 0x03, 0x48, 0x00, 0x01};
    assert_int_equal(sniff_first_bytes(big, sizeof(big)), SNIFF_TLS);
}

static void test_other_bytes_are_not_tls(void **state)
{
    (void)state;
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(sniff_first_bytes((const uint8_t *)http, strlen(http)),
                     SNIFF_OTHER);
    assert_int_equal(sniff_first_bytes(client_hello, 0), SNIFF_OTHER);
    static const uint8_t cases[][6] = {
        {0x17, 0x03, 0x03, 0x00, 0x40, 0x01}, /* application data */
        {0x15, 0x03, 0x03, 0x00, 0x02, 0x01}, /* an alert */
        {0x16, 0x02, 0x00, 0x00, 0x40, 0x01}, /* SSLv2-style version */
        {0x16, 0x03, 0x05, 0x00, 0x40, 0x01}, /* no such version */
        {0x16, 0x03, 0x01, 0x00, 0x00, 0x01}, /* an empty record */
        {0x16, 0x03, 0x01, 0x48, 0x01, 0x01}, /* longer than 2^14+2048 */
        {0x16, 0x03, 0x03, 0x00, 0x40, 0x02}, /* ServerHello: not a client */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(sniff_first_bytes(cases[i], 6), SNIFF_OTHER);
    }
    /* A wrong byte is noticed as soon as it arrives. */
    const uint8_t wrong_version[] = {0x16, 0x04};
    assert_int_equal(sniff_first_bytes(wrong_version, 2), SNIFF_OTHER);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sniff_proto_name(SNIFF_TLS), "tls");
    assert_string_equal(sniff_proto_name(SNIFF_OTHER), "other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_hello_is_tls),
        cmocka_unit_test(test_other_bytes_are_not_tls),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
