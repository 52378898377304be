/* Unit tests of pktseen.c: the fingerprint multiset of a ring hand-over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pktseen.h"

/* A distinct packet per n, like a TCP segment whose sequence number
 * moves on. */
static size_t packet(uint8_t *buf, uint32_t n, size_t len)
{
    memset(buf, 0xab, len);
    buf[0] = (uint8_t)(n >> 24);
    buf[1] = (uint8_t)(n >> 16);
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
    return len;
}

static void test_takes_what_was_added_once(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(16);
    uint8_t a[64], b[64];
    packet(a, 1, sizeof(a));
    packet(b, 2, sizeof(b));
    assert_false(pktseen_take(ps, a, sizeof(a)));
    assert_true(pktseen_add(ps, a, sizeof(a)));
    assert_int_equal(pktseen_count(ps), 1);
    assert_false(pktseen_take(ps, b, sizeof(b)));
    assert_true(pktseen_take(ps, a, sizeof(a)));
    assert_false(pktseen_take(ps, a, sizeof(a)));
    assert_int_equal(pktseen_count(ps), 0);
    pktseen_free(ps);
}

static void test_identical_packets_are_counted(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(16);
    uint8_t ack[54];
    packet(ack, 7, sizeof(ack));
    assert_true(pktseen_add(ps, ack, sizeof(ack)));
    assert_true(pktseen_add(ps, ack, sizeof(ack)));
    assert_int_equal(pktseen_count(ps), 2);
    assert_true(pktseen_take(ps, ack, sizeof(ack)));
    assert_true(pktseen_take(ps, ack, sizeof(ack)));
    /* A third copy was not in the old ring: it must be delivered. */
    assert_false(pktseen_take(ps, ack, sizeof(ack)));
    pktseen_free(ps);
}

static void test_length_is_part_of_the_fingerprint(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(16);
    uint8_t buf[128];
    packet(buf, 3, sizeof(buf));
    assert_true(pktseen_add(ps, buf, 100));
    assert_false(pktseen_take(ps, buf, 99));
    assert_false(pktseen_take(ps, buf, 101));
    assert_true(pktseen_take(ps, buf, 100));
    pktseen_free(ps);
}

static void test_limit_refuses_new_fingerprints(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(4);
    uint8_t buf[40];
    for (uint32_t i = 0; i < 4; i++) {
        packet(buf, i, sizeof(buf));
        assert_true(pktseen_add(ps, buf, sizeof(buf)));
    }
    packet(buf, 99, sizeof(buf));
    assert_false(pktseen_add(ps, buf, sizeof(buf)));
    assert_false(pktseen_take(ps, buf, sizeof(buf)));
    /* Another copy of a recorded packet still fits. */
    packet(buf, 2, sizeof(buf));
    assert_true(pktseen_add(ps, buf, sizeof(buf)));
    assert_int_equal(pktseen_count(ps), 5);
    /* A fingerprint taken out entirely makes room. */
    packet(buf, 0, sizeof(buf));
    assert_true(pktseen_take(ps, buf, sizeof(buf)));
    packet(buf, 99, sizeof(buf));
    assert_true(pktseen_add(ps, buf, sizeof(buf)));
    assert_true(pktseen_take(ps, buf, sizeof(buf)));
    pktseen_free(ps);
}

static void test_many_packets_survive_removals(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct pktseen *ps = pktseen_new(N);
    uint8_t buf[60];
    for (uint32_t i = 0; i < N; i++) {
        packet(buf, i, sizeof(buf));
        assert_true(pktseen_add(ps, buf, sizeof(buf)));
    }
    /* Taking every other one leaves emptied slots that later probes must
     * step over. */
    for (uint32_t i = 0; i < N; i += 2) {
        packet(buf, i, sizeof(buf));
        assert_true(pktseen_take(ps, buf, sizeof(buf)));
    }
    for (uint32_t i = 0; i < N; i++) {
        packet(buf, i, sizeof(buf));
        assert_int_equal(pktseen_take(ps, buf, sizeof(buf)), i % 2 == 1);
    }
    assert_int_equal(pktseen_count(ps), 0);
    for (uint32_t i = N; i < N + 10; i++) {
        packet(buf, i, sizeof(buf));
        assert_false(pktseen_take(ps, buf, sizeof(buf)));
    }
    pktseen_free(ps);
}

static void test_growth_keeps_counts_and_drops_emptied_slots(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(100000);
    uint8_t buf[48];
    /* Three copies of 0..299, then all copies of the even ones taken:
     * the emptied slots must not survive the table's growth, the
     * counts must. */
    for (int copy = 0; copy < 3; copy++) {
        for (uint32_t i = 0; i < 300; i++) {
            packet(buf, i, sizeof(buf));
            assert_true(pktseen_add(ps, buf, sizeof(buf)));
        }
    }
    for (uint32_t i = 0; i < 300; i += 2) {
        packet(buf, i, sizeof(buf));
        for (int copy = 0; copy < 3; copy++) {
            assert_true(pktseen_take(ps, buf, sizeof(buf)));
        }
    }
    for (uint32_t i = 1000; i < 21000; i++) {
        packet(buf, i, sizeof(buf));
        assert_true(pktseen_add(ps, buf, sizeof(buf)));
    }
    assert_int_equal(pktseen_count(ps), 150 * 3 + 20000);
    for (uint32_t i = 0; i < 300; i++) {
        packet(buf, i, sizeof(buf));
        for (int copy = 0; copy < 3; copy++) {
            assert_int_equal(pktseen_take(ps, buf, sizeof(buf)), i % 2 == 1);
        }
        assert_false(pktseen_take(ps, buf, sizeof(buf)));
    }
    pktseen_clear(ps);
    assert_int_equal(pktseen_count(ps), 0);
    packet(buf, 5000, sizeof(buf));
    assert_false(pktseen_take(ps, buf, sizeof(buf)));
    assert_true(pktseen_add(ps, buf, sizeof(buf)));
    assert_true(pktseen_take(ps, buf, sizeof(buf)));
    pktseen_free(ps);
}

static void test_clear_forgets_everything(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(8);
    uint8_t buf[40];
    for (uint32_t i = 0; i < 8; i++) {
        packet(buf, i, sizeof(buf));
        assert_true(pktseen_add(ps, buf, sizeof(buf)));
    }
    pktseen_clear(ps);
    assert_int_equal(pktseen_count(ps), 0);
    packet(buf, 3, sizeof(buf));
    assert_false(pktseen_take(ps, buf, sizeof(buf)));
    /* The whole limit is available again. */
    for (uint32_t i = 100; i < 108; i++) {
        packet(buf, i, sizeof(buf));
        assert_true(pktseen_add(ps, buf, sizeof(buf)));
    }
    pktseen_free(ps);
}

static void test_empty_packet_and_zero_limit(void **state)
{
    (void)state;
    struct pktseen *ps = pktseen_new(0);
    assert_true(pktseen_add(ps, (const uint8_t *)"", 0));
    assert_false(pktseen_add(ps, (const uint8_t *)"x", 1));
    assert_true(pktseen_take(ps, (const uint8_t *)"", 0));
    pktseen_free(ps);
    pktseen_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takes_what_was_added_once),
        cmocka_unit_test(test_identical_packets_are_counted),
        cmocka_unit_test(test_length_is_part_of_the_fingerprint),
        cmocka_unit_test(test_limit_refuses_new_fingerprints),
        cmocka_unit_test(test_many_packets_survive_removals),
        cmocka_unit_test(test_growth_keeps_counts_and_drops_emptied_slots),
        cmocka_unit_test(test_clear_forgets_everything),
        cmocka_unit_test(test_empty_packet_and_zero_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
