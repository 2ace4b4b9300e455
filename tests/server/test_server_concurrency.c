/*
 * test_server_concurrency.c: 64 concurrent requests of mixed shapes and both forms; each answer
 * is checked against its own pair's reference (so an answer swapped between requests fails), and
 * under that load /metrics shows batches of more than one pair.
 */
#include "client.h"
#include "fixtures.h"
#include "images.h"

#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define REQUESTS 64

static const struct test_format shapes[] = {
    {"png8_rgb", 3, 8, ".png"},
    {"png8_grey", 1, 8, ".png"},
    {"png16_rgb", 3, 16, ".png"},
    {"webp_lossless_rgb", 3, 8, ".webp[lossless]"},
};
static const int sizes[][2] = {{64, 48}, {80, 60}, {64, 48}, {96, 40}};

struct request {
  struct test_file img1, img2;
  struct test_expect want;
  int json;
  unsigned port;
  pthread_barrier_t *start;
  struct http_reply reply;
  int rc;
};

static void *run_request(void *arg) {
  struct request *r = arg;
  pthread_barrier_wait(r->start);
  if (r->json) {
    char *b1 = test_base64(&r->img1), *b2 = test_base64(&r->img2);
    char *body = g_strdup_printf("{\"img1\":\"%s\",\"img2\":\"%s\"}", b1, b2);
    r->rc =
        http_post_raw(r->port, "/ssim", "application/json", body, strlen(body), 0, NULL, &r->reply);
    g_free(b1);
    g_free(b2);
    g_free(body);
  } else {
    struct form_part parts[] = {{"img1", r->img1.data, r->img1.len, "a"},
                                {"img2", r->img2.data, r->img2.len, "b"}};
    r->rc = http_post_form(r->port, "/ssim", parts, 2, NULL, &r->reply);
  }
  return NULL;
}

static void test_concurrent_mixed_shapes(void **state) {
  (void)state;
  fixture_init();
  struct daemon_proc proc;
  const char *args[] = {"--max_batch", "16", "--batch_window_us", "20000", NULL};
  assert_int_equal(daemon_start(&proc, args), 0);

  static struct request requests[REQUESTS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, REQUESTS);
  for (int i = 0; i < REQUESTS; i++) {
    struct request *r = &requests[i];
    int s = i % 4;
    r->img1 = test_image(&shapes[s], sizes[s][0], sizes[s][1], 100 + (unsigned)i, 0);
    r->img2 = test_image(&shapes[s], sizes[s][0], sizes[s][1], 100 + (unsigned)i, 1);
    assert_int_equal(
        test_expect_pair(&r->img1, &r->img2, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, 0, &r->want), 0);
    r->json = (i / 4) % 2;
    r->port = proc.port;
    r->start = &start;
  }
  pthread_t threads[REQUESTS];
  for (int i = 0; i < REQUESTS; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, run_request, &requests[i]), 0);
  for (int i = 0; i < REQUESTS; i++)
    pthread_join(threads[i], NULL);
  pthread_barrier_destroy(&start);

  for (int i = 0; i < REQUESTS; i++) {
    struct request *r = &requests[i];
    assert_int_equal(r->rc, 0);
    if (r->reply.status != 200)
      fail_msg("request %d: status %ld: %s", i, r->reply.status, r->reply.body);
    json_t *root = json_loads(r->reply.body, 0, NULL);
    assert_non_null(root);
    double score = json_real_value(json_object_get(root, "ssim"));
    if (!(fabs(score - r->want.score) <= 1e-5))
      fail_msg("request %d: ssim %.9f, its reference %.9f", i, score, r->want.score);
    json_t *channels = json_object_get(root, "channels");
    assert_int_equal(json_array_size(channels), r->want.channels);
    for (size_t c = 0; c < r->want.channels; c++)
      assert_true(
          fabs(json_number_value(json_array_get(channels, c)) - r->want.channel_scores[c]) <= 1e-5);
    assert_int_equal(json_integer_value(json_object_get(root, "width")), r->want.width);
    json_decref(root);
    http_reply_free(&r->reply);
    test_expect_free(&r->want);
    g_free(r->img1.data);
    g_free(r->img2.data);
  }

  /* A request is counted when its connection completes, a moment after the client has its
   * answer: poll (bounded) until all are. */
  struct http_reply metrics = {0};
  for (int tries = 0; tries < 200; tries++) {
    http_reply_free(&metrics);
    assert_int_equal(http_get(proc.port, "/metrics", NULL, &metrics), 0);
    assert_int_equal(metrics.status, 200);
    if (metrics_value(metrics.body, "ssimd_requests_total{endpoint=\"ssim\",code=\"200\"}") ==
        REQUESTS)
      break;
    struct timespec pause = {0, 10000000};
    nanosleep(&pause, NULL);
  }
  double batches = metrics_value(metrics.body, "ssimd_batch_size_count");
  double singles = metrics_value(metrics.body, "ssimd_batch_size_bucket{le=\"1\"}");
  double pairs = metrics_value(metrics.body, "ssimd_batch_size_sum");
  double ok = metrics_value(metrics.body, "ssimd_requests_total{endpoint=\"ssim\",code=\"200\"}");
  fprintf(stderr, "batches %.0f (of one pair: %.0f), pairs %.0f\n", batches, singles, pairs);
  assert_true(pairs == REQUESTS);
  assert_true(ok == REQUESTS);
  if (!(singles < batches))
    fail_msg("no batch of more than one pair under %d concurrent requests", REQUESTS);
  assert_true(batches < REQUESTS);
  assert_non_null(strstr(metrics.body, "ssimd_build_info{version=\""));
  assert_true(metrics_value(metrics.body, "ssimd_pixels_total") > 0);
  assert_true(metrics_value(metrics.body, "ssimd_queue_wait_seconds_count") == REQUESTS);
  assert_true(metrics_value(metrics.body, "ssimd_engine_seconds_count") == batches);
  assert_true(metrics_value(metrics.body, "ssimd_queue_depth") == 0);
  http_reply_free(&metrics);
  assert_int_equal(daemon_stop(&proc), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrent_mixed_shapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
