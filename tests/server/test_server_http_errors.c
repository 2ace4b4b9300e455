/*
 * test_server_http_errors.c: every row of API.md's error table gets exactly its status and a
 * JSON error body: 400 (bad multipart, bad JSON, bad base64, missing part, unknown option value),
 * 401, 404, 405, 413 (body, and an image whose header claims 100000x100000, refused in
 * milliseconds without memory growth), 415, 422 (size mismatch, grey vs colour, too small for
 * valid, truncated and corrupt data). 429 and 503 are in test_server_queue.c.
 */
#include "client.h"
#include "fixtures.h"
#include "images.h"

#include <glib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define BODY_LIMIT 300000

static struct daemon_proc daemon_under_test;
static const struct test_format rgb = {"png8_rgb", 3, 8, ".png"};
static const struct test_format grey = {"png8_grey", 1, 8, ".png"};
static struct test_file rgb_a, rgb_b;

static int setup(void **state) {
  (void)state;
  fixture_init();
  rgb_a = test_image(&rgb, 40, 30, 1, 0);
  rgb_b = test_image(&rgb, 40, 30, 1, 1);
  const char *args[] = {"--max_body_bytes", "300000", NULL};
  return daemon_start(&daemon_under_test, args);
}

static int teardown(void **state) {
  (void)state;
  g_free(rgb_a.data);
  g_free(rgb_b.data);
  return daemon_stop(&daemon_under_test) == 0 ? 0 : -1;
}

static void post_pair(const char *path, const struct test_file *a, const struct test_file *b,
                      struct http_reply *reply) {
  struct form_part parts[] = {{"img1", a->data, a->len, "a"}, {"img2", b->data, b->len, "b"}};
  assert_int_equal(http_post_form(daemon_under_test.port, path, parts, 2, NULL, reply), 0);
}

static void expect_pair_error(const char *path, const struct test_file *a,
                              const struct test_file *b, long status, const char *code,
                              const char *field) {
  struct http_reply reply;
  post_pair(path, a, b, &reply);
  assert_true(reply_is_error(&reply, status, code, field));
  http_reply_free(&reply);
}

static void expect_raw_error(const char *type, const char *body, long status, const char *code,
                             const char *field) {
  struct http_reply reply;
  assert_int_equal(
      http_post_raw(daemon_under_test.port, "/ssim", type, body, strlen(body), 0, NULL, &reply), 0);
  assert_true(reply_is_error(&reply, status, code, field));
  http_reply_free(&reply);
}

static void test_ok_baseline(void **state) {
  (void)state;
  struct http_reply reply;
  post_pair("/ssim", &rgb_a, &rgb_b, &reply);
  assert_int_equal(reply.status, 200);
  assert_true(reply.request_id[0] != '\0');
  http_reply_free(&reply);
}

static void test_bad_multipart(void **state) {
  (void)state;
  expect_raw_error("multipart/form-data", "x", 400, "bad_multipart", NULL);
  expect_raw_error("multipart/form-data; boundary=XyZ",
                   "--XyZ\r\nContent-Disposition: form-data; name=\"img1\"\r\n\r\nab", 400,
                   "bad_multipart", NULL);
}

static void test_bad_json(void **state) {
  (void)state;
  expect_raw_error("application/json", "{\"img1\": ", 400, "bad_json", NULL);
  expect_raw_error("application/json", "[1, 2]", 400, "bad_json", NULL);
}

static void test_bad_base64(void **state) {
  (void)state;
  char *b2 = test_base64(&rgb_b);
  char *body = g_strdup_printf("{\"img1\":\"iVBO$w0K\",\"img2\":\"%s\"}", b2);
  expect_raw_error("application/json", body, 400, "bad_base64", "img1");
  g_free(body);
  body = g_strdup_printf("{\"img1\":\"%s\",\"img2\":\"QUJD\nRA==\"}", b2);
  expect_raw_error("application/json", body, 400, "bad_json", NULL); /* raw newline: not JSON */
  g_free(body);
  body = g_strdup_printf("{\"img1\":\"%s\",\"img2\":\"QUJDRA=\"}", b2);
  expect_raw_error("application/json", body, 400, "bad_base64", "img2");
  g_free(body);
  g_free(b2);
}

static void test_missing_part(void **state) {
  (void)state;
  struct form_part parts[] = {{"img1", rgb_a.data, rgb_a.len, "a"}};
  struct http_reply reply;
  assert_int_equal(http_post_form(daemon_under_test.port, "/ssim", parts, 1, NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 400, "missing_part", "img2"));
  http_reply_free(&reply);
  char *b1 = test_base64(&rgb_a);
  char *body = g_strdup_printf("{\"img2\":\"%s\"}", b1);
  expect_raw_error("application/json", body, 400, "missing_part", "img1");
  g_free(body);
  g_free(b1);
}

static void test_unknown_option_value(void **state) {
  (void)state;
  expect_pair_error("/ssim?padding=foo", &rgb_a, &rgb_b, 400, "bad_option", "padding");
  expect_pair_error("/ssim?threshold=2", &rgb_a, &rgb_b, 400, "bad_option", "threshold");
  expect_pair_error("/ssim?paddin=same", &rgb_a, &rgb_b, 400, "unknown_option", "paddin");
  struct form_part parts[] = {{"img1", rgb_a.data, rgb_a.len, "a"},
                              {"img2", rgb_b.data, rgb_b.len, "b"},
                              {"gradient_format", "jpeg", 4, NULL}};
  struct http_reply reply;
  assert_int_equal(http_post_form(daemon_under_test.port, "/ssim", parts, 3, NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 400, "bad_option", "gradient_format"));
  http_reply_free(&reply);
  char *b1 = test_base64(&rgb_a), *b2 = test_base64(&rgb_b);
  char *body = g_strdup_printf("{\"img1\":\"%s\",\"img2\":\"%s\",\"color\":\"cmyk\"}", b1, b2);
  expect_raw_error("application/json", body, 400, "bad_option", "color");
  g_free(body);
  body = g_strdup_printf("{\"img1\":\"%s\",\"img2\":\"%s\",\"map\":true}", b1, b2);
  expect_raw_error("application/json", body, 400, "bad_option", "map");
  g_free(body);
  g_free(b1);
  g_free(b2);
}

static void test_size_mismatch(void **state) {
  (void)state;
  struct test_file wider = test_image(&rgb, 41, 30, 1, 1);
  expect_pair_error("/ssim", &rgb_a, &wider, 422, "image_mismatch", NULL);
  g_free(wider.data);
}

static void test_grey_vs_colour(void **state) {
  (void)state;
  struct test_file g = test_image(&grey, 40, 30, 1, 1);
  expect_pair_error("/ssim", &rgb_a, &g, 422, "image_mismatch", NULL);
  /* ... which luma compares. */
  struct http_reply reply;
  post_pair("/ssim?color=luma", &rgb_a, &g, &reply);
  assert_int_equal(reply.status, 200);
  http_reply_free(&reply);
  g_free(g.data);
}

static void test_too_small_for_valid(void **state) {
  (void)state;
  struct test_file a = test_image(&rgb, 10, 12, 2, 0), b = test_image(&rgb, 10, 12, 2, 1);
  expect_pair_error("/ssim?padding=valid", &a, &b, 422, "image_too_small", NULL);
  struct http_reply reply;
  post_pair("/ssim?padding=same", &a, &b, &reply);
  assert_int_equal(reply.status, 200);
  http_reply_free(&reply);
  g_free(a.data);
  g_free(b.data);
}

static void test_truncated_and_corrupt(void **state) {
  (void)state;
  struct test_file big = test_image(&rgb, 200, 150, 3, 0);
  struct test_file big_b = test_image(&rgb, 200, 150, 3, 1);
  struct test_file cut = {big.data, big.len / 2};
  expect_pair_error("/ssim", &big_b, &cut, 422, "corrupt_image", "img2");
  /* Garbage in the middle of the compressed data, the header intact. */
  unsigned char *bad = g_memdup2(big.data, big.len);
  for (size_t i = big.len / 3; i < big.len / 3 + 64; i++)
    bad[i] ^= 0x5a;
  struct test_file corrupt = {bad, big.len};
  expect_pair_error("/ssim", &corrupt, &big_b, 422, "corrupt_image", "img1");
  /* Not an image at all. */
  static const char text[] = "this is not an image, just some words in a file part";
  struct test_file words = {(void *)text, sizeof(text) - 1};
  expect_pair_error("/ssim", &words, &big_b, 415, "unsupported_format", "img1");
  g_free(bad);
  g_free(big.data);
  g_free(big_b.data);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A valid PNG whose header says 100000 x 100000 RGB: 30 GB of pixels if anyone decoded it. */
static void test_huge_header(void **state) {
  (void)state;
  unsigned char png[256];
  size_t len = 0;
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(png, signature, 8);
  len = 8;
  const uint32_t side = 100000;
  unsigned char ihdr[13] = {(unsigned char)(side >> 24),
                            (unsigned char)(side >> 16),
                            (unsigned char)(side >> 8),
                            (unsigned char)side,
                            (unsigned char)(side >> 24),
                            (unsigned char)(side >> 16),
                            (unsigned char)(side >> 8),
                            (unsigned char)side,
                            8,
                            2,
                            0,
                            0,
                            0};
  fixture_png_chunk(png, &len, "IHDR", ihdr, sizeof(ihdr));
  static const unsigned char idat[] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01};
  fixture_png_chunk(png, &len, "IDAT", idat, sizeof(idat));
  fixture_png_chunk(png, &len, "IEND", NULL, 0);
  struct test_file huge = {png, len};

  long rss_before = daemon_rss_kib(&daemon_under_test);
  assert_true(rss_before > 0);
  for (int i = 0; i < 5; i++) {
    double start = now_s();
    expect_pair_error("/ssim", &huge, &huge, 413, "image_too_large", "img1");
    double elapsed = now_s() - start;
    if (elapsed > 0.5)
      fail_msg("the 413 took %.3f s", elapsed);
  }
  long rss_after = daemon_rss_kib(&daemon_under_test);
  /* Some growth is allocator noise; a decode would be gigabytes. */
  if (rss_after - rss_before > 32 * 1024)
    fail_msg("RSS grew from %ld KiB to %ld KiB", rss_before, rss_after);
}

static void test_body_too_large(void **state) {
  (void)state;
  size_t len = BODY_LIMIT + 50000;
  char *body = malloc(len);
  assert_non_null(body);
  memset(body, '{', len);
  for (int chunked = 0; chunked < 2; chunked++) {
    struct http_reply reply;
    assert_int_equal(http_post_raw(daemon_under_test.port, "/ssim", "application/json", body, len,
                                   chunked, NULL, &reply),
                     0);
    assert_true(reply_is_error(&reply, 413, "body_too_large", NULL));
    http_reply_free(&reply);
  }
  free(body);
}

static void test_wrong_method_and_path(void **state) {
  (void)state;
  struct http_reply reply;
  assert_int_equal(http_get(daemon_under_test.port, "/ssim", NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 405, "method_not_allowed", NULL));
  assert_string_equal(reply.allow, "POST");
  http_reply_free(&reply);
  assert_int_equal(http_request(daemon_under_test.port, "DELETE", "/healthz", &reply), 0);
  assert_true(reply_is_error(&reply, 405, "method_not_allowed", NULL));
  assert_string_equal(reply.allow, "GET, HEAD");
  http_reply_free(&reply);
  assert_int_equal(http_get(daemon_under_test.port, "/nope", NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 404, "not_found", NULL));
  http_reply_free(&reply);
}

static void test_unsupported_media_type(void **state) {
  (void)state;
  expect_raw_error("text/plain", "img1=a", 415, "unsupported_media_type", NULL);
}

static void test_request_id(void **state) {
  (void)state;
  struct http_reply reply;
  const char *sane[] = {"X-Request-Id: trace-42.a_b:c", NULL};
  assert_int_equal(http_get(daemon_under_test.port, "/healthz", sane, &reply), 0);
  assert_string_equal(reply.request_id, "trace-42.a_b:c");
  http_reply_free(&reply);
  const char *insane[] = {"X-Request-Id: a\"b", NULL};
  assert_int_equal(http_get(daemon_under_test.port, "/healthz", insane, &reply), 0);
  assert_true(reply.request_id[0] != '\0' && strchr(reply.request_id, '"') == NULL);
  http_reply_free(&reply);
}

/* A second daemon with API keys. */
static void test_api_keys(void **state) {
  (void)state;
  GError *error = NULL;
  gchar *path = NULL;
  int fd = g_file_open_tmp("ssimd-keys-XXXXXX", &path, &error);
  assert_true(fd >= 0);
  static const char keys[] = "# team keys\nsecret-one\n\nsecret-two\r\n";
  assert_int_equal(write(fd, keys, sizeof(keys) - 1), (long)sizeof(keys) - 1);
  close(fd);
  struct daemon_proc keyed;
  const char *args[] = {"--api_keys_file", path, NULL};
  assert_int_equal(daemon_start(&keyed, args), 0);
  struct form_part parts[] = {{"img1", rgb_a.data, rgb_a.len, "a"},
                              {"img2", rgb_b.data, rgb_b.len, "b"}};
  struct http_reply reply;
  assert_int_equal(http_post_form(keyed.port, "/ssim", parts, 2, NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 401, "unauthorized", NULL));
  http_reply_free(&reply);
  const char *wrong[] = {"Authorization: Bearer secret-three", NULL};
  assert_int_equal(http_post_form(keyed.port, "/ssim", parts, 2, wrong, &reply), 0);
  assert_true(reply_is_error(&reply, 401, "unauthorized", NULL));
  http_reply_free(&reply);
  const char *prefix[] = {"Authorization: Bearer secret-tw", NULL};
  assert_int_equal(http_get(keyed.port, "/version", prefix, &reply), 0);
  assert_true(reply_is_error(&reply, 401, "unauthorized", NULL));
  http_reply_free(&reply);
  const char *right[] = {"Authorization: Bearer secret-two", NULL};
  assert_int_equal(http_post_form(keyed.port, "/ssim", parts, 2, right, &reply), 0);
  assert_int_equal(reply.status, 200);
  http_reply_free(&reply);
  assert_int_equal(http_get(keyed.port, "/version", NULL, &reply), 0);
  assert_true(reply_is_error(&reply, 401, "unauthorized", NULL));
  http_reply_free(&reply);
  const char *open_paths[] = {"/healthz", "/livez", "/readyz", "/metrics"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(http_get(keyed.port, open_paths[i], NULL, &reply), 0);
    assert_int_equal(reply.status, 200);
    http_reply_free(&reply);
  }
  assert_int_equal(daemon_stop(&keyed), 0);
  unlink(path);
  g_free(path);
}

/* The daemon refuses a bad configuration at start, with a message naming the flag. */
static void test_bad_config_refused(void **state) {
  (void)state;
  struct daemon_proc bad;
  const char *args[] = {"--max_batch", "zero", NULL};
  assert_int_equal(daemon_start(&bad, args), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ok_baseline),
      cmocka_unit_test(test_bad_multipart),
      cmocka_unit_test(test_bad_json),
      cmocka_unit_test(test_bad_base64),
      cmocka_unit_test(test_missing_part),
      cmocka_unit_test(test_unknown_option_value),
      cmocka_unit_test(test_size_mismatch),
      cmocka_unit_test(test_grey_vs_colour),
      cmocka_unit_test(test_too_small_for_valid),
      cmocka_unit_test(test_truncated_and_corrupt),
      cmocka_unit_test(test_huge_header),
      cmocka_unit_test(test_body_too_large),
      cmocka_unit_test(test_wrong_method_and_path),
      cmocka_unit_test(test_unsupported_media_type),
      cmocka_unit_test(test_request_id),
      cmocka_unit_test(test_api_keys),
      cmocka_unit_test(test_bad_config_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
