/* Unit tests of httpturn.c: where an HTTP/1 turn ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/httpturn.h"

static void sent(struct httpturn *t, const char *s)
{
    httpturn_sent(t, (const uint8_t *)s, strlen(s));
}

/* The target's bytes, one at a time: where a response ends must not
 * depend on how it was read. */
static void received(struct httpturn *t, const char *s)
{
    for (size_t i = 0; i < strlen(s); i++) {
        httpturn_received(t, (const uint8_t *)s + i, 1);
    }
}

/* A response shorter or longer than production's ends the turn at its
 * end, neither before nor after. */
static void test_turn_ends_with_the_response(void **state)
{
    (void)state;
    struct httpturn *t = httpturn_new();
    assert_int_equal(httpturn_state(t), HTTPTURN_UNKNOWN);
    sent(t, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcd");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "e");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);

    sent(t, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "0\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    assert_int_equal(httpturn_requests(t), 2);
    assert_int_equal(httpturn_responses(t), 2);
    assert_false(httpturn_stopped(t));
    assert_string_equal(httpturn_reason(t), "");
    httpturn_free(t);
}

/* HEAD answers, 204 and 304 end at their head, whatever the headers
 * say about a body. */
static void test_bodiless_answers_end_at_their_head(void **state)
{
    (void)state;
    struct httpturn *t = httpturn_new();
    sent(t, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    sent(t, "GET /n HTTP/1.1\r\nHost: x\r\n\r\n");
    received(t, "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    sent(t, "GET /m HTTP/1.1\r\nHost: x\r\n\r\n");
    received(t, "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    assert_int_equal(httpturn_responses(t), 3);
    httpturn_free(t);
}

/* A 100 Continue answers the turn of a client that waits for it before
 * the body; once the body is sent, only the final response does. */
static void test_interim_answers_only_a_request_without_its_body(
    void **state)
{
    (void)state;
    struct httpturn *t = httpturn_new();
    sent(t, "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            "Content-Length: 4\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    sent(t, "bo");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    sent(t, "dy");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);

    /* Head and body sent together: the 100 answers nothing. */
    sent(t, "POST /q HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            "Content-Length: 4\r\n\r\nbody");
    received(t, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);

    /* A final answer before the body (417, 413) answers the turn too. */
    sent(t, "POST /r HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            "Content-Length: 4\r\n\r\n");
    received(t, "HTTP/1.1 417 Expectation Failed\r\n"
                "Content-Length: 0\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    httpturn_free(t);
}

/* Pipelined requests: the turn waits for the answer to the last one. */
static void test_pipelined_requests_wait_for_the_last_answer(void **state)
{
    (void)state;
    struct httpturn *t = httpturn_new();
    sent(t, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\n"
            "Host: x\r\n\r\n");
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    /* A request head sent in part cannot be answered: no verdict. */
    sent(t, "GET /3 HTTP/1.1\r\nHo");
    assert_int_equal(httpturn_state(t), HTTPTURN_UNKNOWN);
    sent(t, "st: x\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    httpturn_free(t);
}

/* A close-delimited body ends at the target's end. */
static void test_close_delimited_body_ends_at_the_end(void **state)
{
    (void)state;
    struct httpturn *t = httpturn_new();
    sent(t, "GET / HTTP/1.0\r\n\r\n");
    received(t, "HTTP/1.0 200 OK\r\n\r\nall of it");
    assert_int_equal(httpturn_state(t), HTTPTURN_OWED);
    httpturn_received_end(t);
    assert_int_equal(httpturn_state(t), HTTPTURN_ANSWERED);
    httpturn_free(t);
}

/* What the framers cannot follow leaves the bytes to count: for good. */
static void test_framing_stops_for_good(void **state)
{
    (void)state;
    /* Not HTTP/1 (PostgreSQL's SSLRequest). */
    struct httpturn *t = httpturn_new();
    const uint8_t ssl[] = {0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f};
    httpturn_sent(t, ssl, sizeof(ssl));
    assert_true(httpturn_stopped(t));
    assert_int_equal(httpturn_state(t), HTTPTURN_UNKNOWN);
    assert_string_not_equal(httpturn_reason(t), "");
    sent(t, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(httpturn_state(t), HTTPTURN_UNKNOWN);
    assert_true(httpturn_footprint(t) < 256);
    httpturn_free(t);

    /* A greeting: the target spoke first. */
    t = httpturn_new();
    received(t, "220 ready\r\n");
    assert_true(httpturn_stopped(t));
    httpturn_free(t);

    /* Switching protocols. */
    t = httpturn_new();
    sent(t, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\n\r\n");
    assert_true(httpturn_stopped(t));
    assert_int_equal(httpturn_state(t), HTTPTURN_UNKNOWN);
    httpturn_free(t);

    /* A malformed answer. */
    t = httpturn_new();
    sent(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
    assert_true(httpturn_stopped(t));
    assert_int_equal(httpturn_state(t), HTTPTURN_UNKNOWN);
    httpturn_free(t);

    /* An answer to no request. */
    t = httpturn_new();
    sent(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_true(httpturn_stopped(t));
    httpturn_free(t);

    /* The target's end inside a response. */
    t = httpturn_new();
    sent(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    received(t, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc");
    httpturn_received_end(t);
    assert_true(httpturn_stopped(t));
    httpturn_free(t);
}

/* More requests in flight than the framer queues. */
static void test_deep_pipelines_stop_framing(void **state)
{
    (void)state;
    struct httpturn *t = httpturn_new();
    for (int i = 0; i < 64; i++) {
        sent(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    assert_false(httpturn_stopped(t));
    sent(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(httpturn_stopped(t));
    httpturn_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turn_ends_with_the_response),
        cmocka_unit_test(test_bodiless_answers_end_at_their_head),
        cmocka_unit_test(test_interim_answers_only_a_request_without_its_body),
        cmocka_unit_test(test_pipelined_requests_wait_for_the_last_answer),
        cmocka_unit_test(test_close_delimited_body_ends_at_the_end),
        cmocka_unit_test(test_framing_stops_for_good),
        cmocka_unit_test(test_deep_pipelines_stop_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
