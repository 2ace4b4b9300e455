/*
 * test_server_queue.c: a full queue answers 429 with Retry-After (before the upload to a client
 * that waits with Expect: 100-continue, after it to any other, and either way the client reads
 * the answer), and SIGTERM drains: /readyz turns 503, new requests get 503, every accepted
 * request is answered, exit status 0.
 */
#include "client.h"
#include "fixtures.h"
#include "images.h"

#include <glib.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define CLIENTS 16

static const struct test_format rgb = {"png8_rgb", 3, 8, ".png"};
/* Large enough that decode and compute take a good fraction of a second on a small machine. */
static struct test_file big_a, big_b;

struct client {
  unsigned port;
  pthread_barrier_t *start;
  const char *const *headers;
  struct http_reply reply;
  int rc;
};

static void *run_client(void *arg) {
  struct client *c = arg;
  if (c->start != NULL)
    pthread_barrier_wait(c->start);
  struct form_part parts[] = {{"img1", big_a.data, big_a.len, "a"},
                              {"img2", big_b.data, big_b.len, "b"}};
  c->rc = http_post_form(c->port, "/ssim?map=f32", parts, 2, c->headers, &c->reply);
  return NULL;
}

static int setup(void **state) {
  (void)state;
  fixture_init();
  big_a = test_image(&rgb, 800, 600, 7, 0);
  big_b = test_image(&rgb, 800, 600, 7, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  g_free(big_a.data);
  g_free(big_b.data);
  return 0;
}

/* CLIENTS requests at once against a queue of 2: some are answered, the others get 429. */
static void queue_full(const char *const *headers) {
  struct daemon_proc proc;
  const char *args[] = {"--queue_limit", "2", "--decode_threads", "1", "--max_batch", "1", NULL};
  assert_int_equal(daemon_start(&proc, args), 0);
  static struct client clients[CLIENTS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, CLIENTS);
  pthread_t threads[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    clients[i] = (struct client){.port = proc.port, .start = &start, .headers = headers};
    assert_int_equal(pthread_create(&threads[i], NULL, run_client, &clients[i]), 0);
  }
  for (int i = 0; i < CLIENTS; i++)
    pthread_join(threads[i], NULL);
  pthread_barrier_destroy(&start);
  int ok = 0, full = 0;
  for (int i = 0; i < CLIENTS; i++) {
    assert_int_equal(clients[i].rc, 0);
    if (clients[i].reply.status == 200) {
      ok++;
    } else {
      assert_true(reply_is_error(&clients[i].reply, 429, "queue_full", NULL));
      assert_string_equal(clients[i].reply.retry_after, "1");
      full++;
    }
    http_reply_free(&clients[i].reply);
  }
  fprintf(stderr, "%d answered 200, %d answered 429\n", ok, full);
  assert_true(ok >= 2);
  assert_true(full >= 1);
  assert_int_equal(daemon_stop(&proc), 0);
}

static void test_queue_full_429(void **state) {
  (void)state;
  queue_full(NULL);
}

static void test_queue_full_429_expect(void **state) {
  (void)state;
  const char *const expect[] = {"Expect: 100-continue", NULL};
  queue_full(expect);
}

static void sleep_ms(long ms) {
  struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static void test_drain_on_sigterm(void **state) {
  (void)state;
  struct daemon_proc proc;
  const char *args[] = {"--queue_limit", "64", "--max_batch", "4", NULL};
  assert_int_equal(daemon_start(&proc, args), 0);
  static struct client clients[CLIENTS];
  pthread_t threads[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    clients[i] = (struct client){.port = proc.port};
    assert_int_equal(pthread_create(&threads[i], NULL, run_client, &clients[i]), 0);
  }
  /* Wait (bounded) until every client's request has been accepted. */
  double accepted = 0;
  for (int tries = 0; tries < 500 && accepted < CLIENTS; tries++) {
    struct http_reply metrics;
    assert_int_equal(http_get(proc.port, "/metrics", NULL, &metrics), 0);
    accepted = metrics_value(metrics.body, "ssimd_inflight_requests");
    http_reply_free(&metrics);
    sleep_ms(10);
  }
  kill(proc.pid, SIGTERM);
  sleep_ms(50);
  struct http_reply reply;
  assert_int_equal(http_get(proc.port, "/readyz", NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 503, "shutting_down", NULL));
  http_reply_free(&reply);
  struct form_part parts[] = {{"img1", big_a.data, 100, "a"}, {"img2", big_b.data, 100, "b"}};
  assert_int_equal(http_post_form(proc.port, "/ssim", parts, 2, NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 503, "shutting_down", NULL));
  assert_string_equal(reply.retry_after, "1");
  http_reply_free(&reply);
  assert_int_equal(http_get(proc.port, "/healthz", NULL, &reply), 0);
  assert_int_equal(reply.status, 200);
  http_reply_free(&reply);

  int ok = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(clients[i].rc, 0);
    if (clients[i].reply.status != 200)
      fail_msg("client %d: %ld %s", i, clients[i].reply.status, clients[i].reply.body);
    ok++;
    http_reply_free(&clients[i].reply);
  }
  assert_int_equal(ok, CLIENTS);
  assert_int_equal(daemon_stop_signal(&proc, SIGTERM, 60), 0);
}

/* A request not answered within request_timeout_s gets 503 timeout; its late result is dropped
 * and the daemon stays healthy and stops cleanly (no leak of the dropped job under LSan). */
static void test_deadline_503(void **state) {
  (void)state;
  struct daemon_proc proc;
  const char *args[] = {"--request_timeout_s", "0.005", "--decode_threads", "1", NULL};
  assert_int_equal(daemon_start(&proc, args), 0);
  for (int i = 0; i < 3; i++) {
    struct form_part parts[] = {{"img1", big_a.data, big_a.len, "a"},
                                {"img2", big_b.data, big_b.len, "b"}};
    struct http_reply reply;
    assert_int_equal(http_post_form(proc.port, "/ssim", parts, 2, NULL, &reply), 0);
    assert_true(reply_is_error(&reply, 503, "timeout", NULL));
    assert_string_equal(reply.retry_after, "1");
    http_reply_free(&reply);
  }
  struct http_reply reply;
  assert_int_equal(http_get(proc.port, "/healthz", NULL, &reply), 0);
  assert_int_equal(reply.status, 200);
  http_reply_free(&reply);
  assert_int_equal(daemon_stop(&proc), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_full_429),
      cmocka_unit_test(test_queue_full_429_expect),
      cmocka_unit_test(test_drain_on_sigterm),
      cmocka_unit_test(test_deadline_503),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
