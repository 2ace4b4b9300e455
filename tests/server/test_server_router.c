/*
 * test_server_router.c: the routing table lookup (404, 405 with Allow, HEAD), the error table
 * (every class has a status and a code), the mappings from decode and engine errors, and the
 * JSON error body.
 */
#include "decode.h"
#include "error.h"
#include "router.h"
#include "ssim.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void noop_end(struct ssimd_request *req) {
  (void)req;
}

static const struct ssimd_handler get_a = {
    .method = "GET", .path = "/a", .name = "a", .on_end = noop_end};
static const struct ssimd_handler post_a = {
    .method = "POST", .path = "/a", .name = "a_post", .on_end = noop_end};
static const struct ssimd_handler post_b = {
    .method = "POST", .path = "/b", .name = "b", .on_end = noop_end};
static const struct ssimd_handler *const table[] = {&get_a, &post_a, &post_b};

static void test_router(void **state) {
  (void)state;
  const struct ssimd_handler *found = NULL;
  char allow[64];
  assert_int_equal(ssimd_router_find(table, 3, "GET", "/a", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_FOUND);
  assert_ptr_equal(found, &get_a);
  assert_int_equal(ssimd_router_find(table, 3, "POST", "/a", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_FOUND);
  assert_ptr_equal(found, &post_a);
  assert_int_equal(ssimd_router_find(table, 3, "HEAD", "/a", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_FOUND);
  assert_ptr_equal(found, &get_a);
  assert_int_equal(ssimd_router_find(table, 3, "PUT", "/a", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_BAD_METHOD);
  assert_null(found);
  assert_string_equal(allow, "GET, HEAD, POST");
  assert_int_equal(ssimd_router_find(table, 3, "GET", "/b", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_BAD_METHOD);
  assert_string_equal(allow, "POST");
  assert_int_equal(ssimd_router_find(table, 3, "GET", "/c", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_NOT_FOUND);
  assert_int_equal(ssimd_router_find(table, 3, "GET", "/a/", &found, allow, sizeof(allow)),
                   SSIMD_ROUTE_NOT_FOUND);
}

/* The daemon's own table: every endpoint of API.md but video, each path once per method. */
static void test_daemon_routes(void **state) {
  (void)state;
  static const char *const expected[][2] = {
      {"POST", "/ssim"},   {"GET", "/healthz"}, {"GET", "/livez"}, {"GET", "/readyz"},
      {"GET", "/metrics"}, {"GET", "/version"}, {"GET", "/"}};
  assert_int_equal(ssimd_route_count, sizeof(expected) / sizeof(expected[0]));
  for (size_t i = 0; i < ssimd_route_count; i++) {
    const struct ssimd_handler *found = NULL;
    char allow[64];
    assert_int_equal(ssimd_router_find(ssimd_routes, ssimd_route_count, expected[i][0],
                                       expected[i][1], &found, allow, sizeof(allow)),
                     SSIMD_ROUTE_FOUND);
    assert_non_null(found->on_end);
    assert_non_null(found->name);
  }
  const struct ssimd_handler *ssim = NULL;
  char allow[64];
  ssimd_router_find(ssimd_routes, ssimd_route_count, "POST", "/ssim", &ssim, allow, sizeof(allow));
  assert_true(ssim->body_limit == SSIMD_BODY_LIMIT_CONFIG);
  assert_int_equal(ssim->public_endpoint, 0);
}

static void test_error_table(void **state) {
  (void)state;
  for (int e = 0; e < SSIMD_ERROR_COUNT; e++) {
    unsigned status = ssimd_error_status((ssimd_error)e);
    assert_true(status >= 400 && status < 600);
    assert_true(strlen(ssimd_error_code((ssimd_error)e)) > 0);
    assert_true(strlen(ssimd_error_message((ssimd_error)e)) > 0);
  }
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_BAD_MULTIPART), 400);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_UNAUTHORIZED), 401);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_NOT_FOUND), 404);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_METHOD_NOT_ALLOWED), 405);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_QUEUE_FULL), 429);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_DRAINING), 503);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_INTERNAL), 500);
  assert_int_equal(ssimd_error_status(SSIMD_ERROR_COUNT), 500);
}

static void test_error_mappings(void **state) {
  (void)state;
  assert_int_equal(ssimd_error_status(ssimd_error_from_decode(SSIMD_DECODE_EFORMAT)), 415);
  assert_int_equal(ssimd_error_status(ssimd_error_from_decode(SSIMD_DECODE_ETOOBIG)), 413);
  assert_int_equal(ssimd_error_status(ssimd_error_from_decode(SSIMD_DECODE_ECORRUPT)), 422);
  assert_int_equal(ssimd_error_status(ssimd_error_from_decode(SSIMD_DECODE_EMISMATCH)), 422);
  assert_int_equal(ssimd_error_status(ssimd_error_from_decode(SSIMD_DECODE_ETOOSMALL)), 422);
  assert_int_equal(ssimd_error_status(ssimd_error_from_decode(SSIMD_DECODE_ENOMEM)), 503);
  assert_int_equal(ssimd_error_status(ssimd_error_from_engine(SSIM_ETOOSMALL)), 422);
  assert_int_equal(ssimd_error_status(ssimd_error_from_engine(SSIM_ENONFINITE)), 422);
  assert_int_equal(ssimd_error_status(ssimd_error_from_engine(SSIM_ENOMEM)), 503);
  assert_int_equal(ssimd_error_status(ssimd_error_from_engine(SSIM_EDEVICE)), 503);
  assert_int_equal(ssimd_error_status(ssimd_error_from_engine(SSIM_EINVAL)), 500);
}

static void test_error_body(void **state) {
  (void)state;
  size_t len = 0;
  char *text =
      ssimd_error_body(SSIMD_ERROR_BAD_OPTION, "padding must be same or valid", "padding", &len);
  assert_non_null(text);
  assert_int_equal(strlen(text), len);
  json_t *root = json_loads(text, 0, NULL);
  json_t *error = json_object_get(root, "error");
  assert_string_equal(json_string_value(json_object_get(error, "code")), "bad_option");
  assert_string_equal(json_string_value(json_object_get(error, "message")),
                      "padding must be same or valid");
  assert_string_equal(json_string_value(json_object_get(error, "field")), "padding");
  json_decref(root);
  free(text);
  text = ssimd_error_body(SSIMD_ERROR_QUEUE_FULL, NULL, NULL, &len);
  root = json_loads(text, 0, NULL);
  error = json_object_get(root, "error");
  assert_string_equal(json_string_value(json_object_get(error, "code")), "queue_full");
  assert_string_equal(json_string_value(json_object_get(error, "message")),
                      ssimd_error_message(SSIMD_ERROR_QUEUE_FULL));
  assert_null(json_object_get(error, "field"));
  json_decref(root);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_router),      cmocka_unit_test(test_daemon_routes),
      cmocka_unit_test(test_error_table), cmocka_unit_test(test_error_mappings),
      cmocka_unit_test(test_error_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
