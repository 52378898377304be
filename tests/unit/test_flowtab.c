/* Unit tests of flowtab.c: the 4-tuple hash table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/flowtab.h"

static struct flow_key key4(uint32_t caddr, uint16_t cport, uint32_t saddr,
                            uint16_t sport)
{
    struct flow_key k;
    memset(&k, 0, sizeof(k));
    k.family = 4;
    k.cport = cport;
    k.sport = sport;
    k.caddr[0] = (uint8_t)(caddr >> 24);
    k.caddr[1] = (uint8_t)(caddr >> 16);
    k.caddr[2] = (uint8_t)(caddr >> 8);
    k.caddr[3] = (uint8_t)caddr;
    k.saddr[0] = (uint8_t)(saddr >> 24);
    k.saddr[1] = (uint8_t)(saddr >> 16);
    k.saddr[2] = (uint8_t)(saddr >> 8);
    k.saddr[3] = (uint8_t)saddr;
    return k;
}

static struct flow_key key6(uint8_t last, uint16_t cport, uint16_t sport)
{
    struct flow_key k;
    memset(&k, 0, sizeof(k));
    k.family = 6;
    k.cport = cport;
    k.sport = sport;
    static const uint8_t prefix[4] = {0x20, 0x01, 0x0d, 0xb8};
    memcpy(k.caddr, prefix, 4);
    memcpy(k.saddr, prefix, 4);
    k.caddr[15] = last;
    k.saddr[15] = 1;
    return k;
}

static void test_insert_find_remove_ipv4(void **state)
{
    (void)state;
    struct flowtab t;
    flowtab_init(&t, 42);
    struct flowtab_entry a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.key = key4(0x0a000001, 40000, 0x0a000002, 80);
    b.key = key4(0x0a000001, 40001, 0x0a000002, 80);
    assert_null(flowtab_find(&t, &a.key));
    flowtab_insert(&t, &a);
    assert_int_equal(t.count, 1);
    assert_ptr_equal(flowtab_find(&t, &a.key), &a);
    assert_null(flowtab_find(&t, &b.key));
    flowtab_insert(&t, &b);
    assert_int_equal(t.count, 2);
    assert_ptr_equal(flowtab_find(&t, &b.key), &b);
    /* A copy of the key finds the entry: lookup is by value. */
    struct flow_key copy = a.key;
    assert_ptr_equal(flowtab_find(&t, &copy), &a);
    flowtab_remove(&t, &a);
    assert_int_equal(t.count, 1);
    assert_null(flowtab_find(&t, &a.key));
    assert_ptr_equal(flowtab_find(&t, &b.key), &b);
    flowtab_remove(&t, &b);
    assert_int_equal(t.count, 0);
    assert_null(flowtab_find(&t, &b.key));
    /* Reinsert after removal. */
    flowtab_insert(&t, &a);
    assert_ptr_equal(flowtab_find(&t, &a.key), &a);
    flowtab_remove(&t, &a);
    flowtab_cleanup(&t);
}

static void test_insert_find_remove_ipv6(void **state)
{
    (void)state;
    struct flowtab t;
    flowtab_init(&t, 7);
    struct flowtab_entry e[10];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 10; i++) {
        e[i].key = key6((uint8_t)(i + 2), (uint16_t)(50000 + i), 443);
        flowtab_insert(&t, &e[i]);
    }
    assert_int_equal(t.count, 10);
    for (int i = 0; i < 10; i++) {
        assert_ptr_equal(flowtab_find(&t, &e[i].key), &e[i]);
    }
    /* An IPv4 key with the same leading bytes is another flow. */
    struct flow_key k4 = e[0].key;
    k4.family = 4;
    assert_null(flowtab_find(&t, &k4));
    for (int i = 0; i < 10; i += 2) {
        flowtab_remove(&t, &e[i]);
    }
    assert_int_equal(t.count, 5);
    for (int i = 0; i < 10; i++) {
        if (i % 2 == 0) {
            assert_null(flowtab_find(&t, &e[i].key));
        } else {
            assert_ptr_equal(flowtab_find(&t, &e[i].key), &e[i]);
        }
    }
    flowtab_cleanup(&t);
}

static void test_equal(void **state)
{
    (void)state;
    struct flow_key a = key4(1, 2, 3, 4), b = key4(1, 2, 3, 4);
    assert_true(flow_key_equal(&a, &b));
    b.sport = 5;
    assert_false(flow_key_equal(&a, &b));
}

#define MANY 100000

static struct flow_key many_key(uint32_t i)
{
    /* Sequential addresses and ports: the kind of keys a scan makes. */
    return key4(0x0a000000u + (i >> 8), (uint16_t)(1024 + (i & 0xff)),
                0xc0a80001u, 8080);
}

static void test_growth(void **state)
{
    (void)state;
    struct flowtab t;
    flowtab_init(&t, 0x1234567890abcdefULL);
    size_t initial_buckets = t.mask + 1;
    struct flowtab_entry *e = calloc(MANY, sizeof(*e));
    assert_non_null(e);
    for (uint32_t i = 0; i < MANY; i++) {
        e[i].key = many_key(i);
        flowtab_insert(&t, &e[i]);
    }
    assert_int_equal(t.count, MANY);
    /* The table grew: load stays bounded. */
    assert_true(t.mask + 1 > initial_buckets);
    assert_true(t.count <= 2 * (t.mask + 1));
    for (uint32_t i = 0; i < MANY; i++) {
        struct flow_key k = many_key(i);
        if (flowtab_find(&t, &k) != &e[i]) {
            fail_msg("entry %u not found after growth", i);
        }
    }
    /* Keys never inserted are absent. */
    for (uint32_t i = MANY; i < MANY + 1000; i++) {
        struct flow_key k = many_key(i);
        assert_null(flowtab_find(&t, &k));
    }
    /* Remove every third, then check all. */
    for (uint32_t i = 0; i < MANY; i += 3) {
        flowtab_remove(&t, &e[i]);
    }
    for (uint32_t i = 0; i < MANY; i++) {
        struct flow_key k = many_key(i);
        struct flowtab_entry *f = flowtab_find(&t, &k);
        if (i % 3 == 0 ? f != NULL : f != &e[i]) {
            fail_msg("entry %u wrong after removals", i);
        }
    }
    assert_int_equal(t.count, MANY - (MANY + 2) / 3);
    flowtab_cleanup(&t);
    free(e);
}

static void test_one_byte_differences(void **state)
{
    (void)state;
    /* Keys that differ from a base key in exactly one byte, anywhere in
     * the key: all distinct entries. */
    struct flowtab t;
    flowtab_init(&t, 99);
    struct flow_key base = key6(9, 40000, 443);
    size_t n = sizeof(struct flow_key);
    struct flowtab_entry *e = calloc(n + 1, sizeof(*e));
    assert_non_null(e);
    e[n].key = base;
    flowtab_insert(&t, &e[n]);
    for (size_t i = 0; i < n; i++) {
        e[i].key = base;
        uint8_t *bytes = (uint8_t *)&e[i].key;
        bytes[i] ^= 0x01;
        assert_null(flowtab_find(&t, &e[i].key));
        flowtab_insert(&t, &e[i]);
    }
    for (size_t i = 0; i <= n; i++) {
        assert_ptr_equal(flowtab_find(&t, &e[i].key), &e[i]);
    }
    /* IPv4 keys differing in one address byte. */
    struct flowtab_entry v4[8];
    memset(v4, 0, sizeof(v4));
    for (int i = 0; i < 4; i++) {
        v4[i].key = key4(0x0a000001u ^ (1u << (8 * i)), 1000, 0x0a000002u, 80);
        v4[4 + i].key =
            key4(0x0a000001u, 1000, 0x0a000002u ^ (1u << (8 * i)), 80);
    }
    for (int i = 0; i < 8; i++) {
        flowtab_insert(&t, &v4[i]);
    }
    for (int i = 0; i < 8; i++) {
        assert_ptr_equal(flowtab_find(&t, &v4[i].key), &v4[i]);
    }
    flowtab_cleanup(&t);
    free(e);
}

static void test_shared_bucket_removal(void **state)
{
    (void)state;
    /* Find keys that land in one bucket, then remove each position of
     * the chain (head, middle, tail) in turn. */
    struct flowtab t;
    flowtab_init(&t, 5);
    enum { N = 5 };
    struct flowtab_entry *pool = calloc(200000, sizeof(*pool));
    assert_non_null(pool);
    struct flowtab_entry *same[N];
    size_t found = 0;
    size_t bucket = 0;
    for (uint32_t i = 0; i < 200000 && found < N; i++) {
        pool[i].key = many_key(i);
        /* The bucket is a function of the hash the table computes: insert
         * to learn it, keep the entry if it matches the first one. */
        flowtab_insert(&t, &pool[i]);
        size_t b = pool[i].hash & t.mask;
        if (found == 0) {
            bucket = b;
            same[found++] = &pool[i];
        } else if (b == bucket) {
            same[found++] = &pool[i];
        } else {
            flowtab_remove(&t, &pool[i]);
        }
    }
    assert_int_equal(found, N);
    assert_int_equal(t.count, N);
    /* They do share a chain. */
    size_t chain = 0;
    for (struct flowtab_entry *x = t.buckets[bucket]; x; x = x->next) {
        chain++;
    }
    assert_int_equal(chain, N);
    /* Remove the middle, then the chain head, then the tail. */
    static const int order[N] = {2, 4, 0, 1, 3};
    bool gone[N] = {false};
    for (int k = 0; k < N; k++) {
        flowtab_remove(&t, same[order[k]]);
        gone[order[k]] = true;
        for (int j = 0; j < N; j++) {
            struct flowtab_entry *f = flowtab_find(&t, &same[j]->key);
            if (gone[j]) {
                assert_null(f);
            } else {
                assert_ptr_equal(f, same[j]);
            }
        }
        assert_int_equal(t.count, (size_t)(N - k - 1));
    }
    flowtab_cleanup(&t);
    free(pool);
}

static void test_seeds_same_membership(void **state)
{
    (void)state;
    static const uint64_t seeds[] = {0, 1, 0xdeadbeefULL,
                                     0xffffffffffffffffULL};
    enum { N = 5000 };
    for (size_t s = 0; s < 4; s++) {
        struct flowtab t;
        flowtab_init(&t, seeds[s]);
        struct flowtab_entry *e = calloc(N, sizeof(*e));
        assert_non_null(e);
        for (uint32_t i = 0; i < N; i++) {
            e[i].key = many_key(i * 2); /* even keys only */
            flowtab_insert(&t, &e[i]);
        }
        for (uint32_t i = 0; i < 2 * N; i++) {
            struct flow_key k = many_key(i);
            struct flowtab_entry *f = flowtab_find(&t, &k);
            if (i % 2 == 0) {
                assert_ptr_equal(f, &e[i / 2]);
            } else {
                assert_null(f);
            }
        }
        flowtab_cleanup(&t);
        free(e);
    }
    /* And the seed does change the hash. */
    struct flowtab a, b;
    flowtab_init(&a, 1);
    flowtab_init(&b, 2);
    struct flowtab_entry x, y;
    memset(&x, 0, sizeof(x));
    memset(&y, 0, sizeof(y));
    x.key = y.key = many_key(77);
    flowtab_insert(&a, &x);
    flowtab_insert(&b, &y);
    assert_true(x.hash != y.hash);
    flowtab_cleanup(&a);
    flowtab_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove_ipv4),
        cmocka_unit_test(test_insert_find_remove_ipv6),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_one_byte_differences),
        cmocka_unit_test(test_shared_bucket_removal),
        cmocka_unit_test(test_seeds_same_membership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
