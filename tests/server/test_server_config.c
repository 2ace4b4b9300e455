/*
 * test_server_config.c: flags, SSIM_* variables, precedence, validation and messages.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

/* A fake environment for ssimd_config_parse. */
static const char *const *fake_env;

static const char *env_lookup(const char *name) {
  for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i += 2)
    if (strcmp(fake_env[i], name) == 0)
      return fake_env[i + 1];
  return NULL;
}

static int parse(struct ssimd_config *config, const char *const *env, int argc, const char **argv,
                 char *detail, size_t size) {
  fake_env = env;
  ssimd_config_init(config);
  return ssimd_config_parse(config, argc, (char **)argv, env_lookup, detail, size);
}

static void test_defaults(void **state) {
  (void)state;
  struct ssimd_config c;
  char detail[256] = "";
  const char *argv[] = {"ssimd"};
  assert_int_equal(parse(&c, NULL, 1, argv, detail, sizeof(detail)), 0);
  assert_string_equal(c.listen_host, "0.0.0.0");
  assert_int_equal(c.listen_port, 8080);
  assert_string_equal(c.backend, "auto");
  assert_int_equal(c.max_batch, 32);
  assert_int_equal(c.batch_window_us, 2000);
  assert_int_equal(c.queue_limit, 256);
  assert_int_equal(c.max_body_bytes, 256u << 20);
  assert_int_equal(c.max_pixels, 100000000);
  assert_true(c.decode_threads >= 1);
  assert_string_equal(c.api_keys_file, "");
  assert_true(c.request_timeout_s == 60);
  assert_int_equal(c.log_format, SSIMD_LOG_TEXT);
}

static void test_flags_both_syntaxes(void **state) {
  (void)state;
  struct ssimd_config c;
  char detail[256] = "";
  const char *argv[] = {"ssimd",
                        "--listen=127.0.0.1:0",
                        "--max-batch",
                        "8",
                        "--batch_window_us=0",
                        "--max_body_bytes",
                        "4Mi",
                        "--max_pixels=2M",
                        "--log_format",
                        "json",
                        "--backend=cpu",
                        "--request_timeout_s=0.5",
                        "--decode_threads",
                        "3"};
  assert_int_equal(parse(&c, NULL, 14, argv, detail, sizeof(detail)), 0);
  assert_string_equal(c.listen_host, "127.0.0.1");
  assert_int_equal(c.listen_port, 0);
  assert_int_equal(c.max_batch, 8);
  assert_int_equal(c.batch_window_us, 0);
  assert_int_equal(c.max_body_bytes, 4u << 20);
  assert_int_equal(c.max_pixels, 2000000);
  assert_int_equal(c.log_format, SSIMD_LOG_JSON);
  assert_string_equal(c.backend, "cpu");
  assert_true(c.request_timeout_s == 0.5);
  assert_int_equal(c.decode_threads, 3);
}

static void test_env_and_precedence(void **state) {
  (void)state;
  struct ssimd_config c;
  char detail[256] = "";
  const char *env[] = {"SSIM_MAX_BATCH", "4", "SSIM_QUEUE_LIMIT", "9", "SSIM_LISTEN",
                       "[::1]:9000",     NULL};
  const char *argv[] = {"ssimd", "--max_batch=16"};
  assert_int_equal(parse(&c, env, 2, argv, detail, sizeof(detail)), 0);
  assert_int_equal(c.max_batch, 16); /* the flag wins */
  assert_int_equal(c.queue_limit, 9);
  assert_string_equal(c.listen_host, "::1");
  assert_int_equal(c.listen_port, 9000);
}

static void expect_error(const char *const *env, int argc, const char **argv, const char *needle) {
  struct ssimd_config c;
  char detail[256] = "";
  assert_int_equal(parse(&c, env, argc, argv, detail, sizeof(detail)), -1);
  if (strstr(detail, needle) == NULL)
    fail_msg("message \"%s\" does not mention \"%s\"", detail, needle);
}

static void test_bad_values(void **state) {
  (void)state;
  const char *a1[] = {"ssimd", "--max_batch=0"};
  expect_error(NULL, 2, a1, "--max_batch");
  const char *a2[] = {"ssimd", "--backend=opencl"};
  expect_error(NULL, 2, a2, "auto cpu cuda sycl");
  const char *a3[] = {"ssimd", "--listen=localhost:80"};
  expect_error(NULL, 2, a3, "--listen");
  const char *a4[] = {"ssimd", "--listen=1.2.3.4:70000"};
  expect_error(NULL, 2, a4, "--listen");
  const char *a5[] = {"ssimd", "--log_format=xml"};
  expect_error(NULL, 2, a5, "text json");
  const char *a6[] = {"ssimd", "--request_timeout_s=-1"};
  expect_error(NULL, 2, a6, "--request_timeout_s");
  const char *a7[] = {"ssimd", "--max_body_bytes=12Q"};
  expect_error(NULL, 2, a7, "--max_body_bytes");
  const char *a8[] = {"ssimd", "--nope=1"};
  expect_error(NULL, 2, a8, "--nope");
  const char *a9[] = {"ssimd", "--queue_limit"};
  expect_error(NULL, 2, a9, "needs a value");
  const char *a10[] = {"ssimd", "stray"};
  expect_error(NULL, 2, a10, "stray");
  const char *env[] = {"SSIM_DECODE_THREADS", "-2", NULL};
  const char *a11[] = {"ssimd"};
  expect_error(env, 1, a11, "SSIM_DECODE_THREADS");
  const char *a12[] = {"ssimd", "--batch_window_us=1.5"};
  expect_error(NULL, 2, a12, "--batch_window_us");
}

static void test_help(void **state) {
  (void)state;
  struct ssimd_config c;
  char detail[64];
  const char *a1[] = {"ssimd", "--max_batch=0", "--help"};
  assert_int_equal(parse(&c, NULL, 3, a1, detail, sizeof(detail)), 1);
  assert_int_equal(ssimd_config_wants_version(3, (char **)a1), 0);
  const char *a2[] = {"ssimd", "--version"};
  assert_int_equal(parse(&c, NULL, 2, a2, detail, sizeof(detail)), 1);
  assert_int_equal(ssimd_config_wants_version(2, (char **)a2), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_flags_both_syntaxes),
      cmocka_unit_test(test_env_and_precedence),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_help),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
