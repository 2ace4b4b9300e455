/*
 * test_ssim_tool.c: the `ssim` command, run as a child process on files generated here.
 *
 *   test_ssim_tool PATH-TO-SSIM
 *
 * Checks that its scores are the engine's on the same pixels, that every output file exists and
 * decodes, that --json parses, and that each failure gives its own exit code and one line.
 */
#include "decode.h"
#include "fixtures.h"
#include "ssim.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define W 64
#define H 48

static const char *tool_path;
static gchar *work_dir;

/* The outcome of one run of the tool. */
struct run {
  int status; /* exit code */
  gchar *out;
  gchar *err;
};

static void run_free(struct run *run) {
  g_free(run->out);
  g_free(run->err);
}

/* Run the tool with a NULL-terminated argument list (after the program name). */
static struct run run_tool(const char *first, ...) {
  const char *argv[32];
  size_t argc = 0;
  argv[argc++] = tool_path;
  va_list args;
  va_start(args, first);
  for (const char *arg = first; arg != NULL && argc < 31; arg = va_arg(args, const char *))
    argv[argc++] = arg;
  va_end(args);
  argv[argc] = NULL;
  struct run run = {0};
  gint wait_status = 0;
  GError *error = NULL;
  if (!g_spawn_sync(work_dir, (gchar **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &run.out, &run.err,
                    &wait_status, &error))
    fail_msg("cannot run %s: %s", tool_path, error->message);
  if (!WIFEXITED(wait_status))
    fail_msg("%s did not exit normally (signal or crash); stderr: %s", tool_path, run.err);
  run.status = WEXITSTATUS(wait_status);
  return run;
}

/* Expect a failure: exit code `status`, nothing on stdout, one line "ssim: ..." on stderr that
 * contains `needle`. */
static void expect_failure(struct run run, int status, const char *needle) {
  if (run.status != status)
    fail_msg("exit %d, expected %d; stderr: %s", run.status, status, run.err);
  assert_string_equal(run.out, "");
  size_t len = strlen(run.err);
  assert_true(len > 7);
  assert_true(strncmp(run.err, "ssim: ", 6) == 0);
  assert_true(run.err[len - 1] == '\n');
  if (strchr(run.err, '\n') != run.err + len - 1)
    fail_msg("more than one line on stderr: %s", run.err);
  if (strstr(run.err, needle) == NULL)
    fail_msg("stderr \"%s\" does not mention \"%s\"", run.err, needle);
  run_free(&run);
}

/* Write interleaved u8 pixels as a PNG file in the work directory. */
static void write_png(const char *name, const uint8_t *pixels, int width, int height, int bands) {
  size_t len = 0;
  void *png =
      fixture_encode(pixels, width, height, bands, VIPS_FORMAT_UCHAR,
                     bands == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB, ".png", &len);
  gchar *path = g_build_filename(work_dir, name, NULL);
  assert_true(g_file_set_contents(path, png, (gssize)len, NULL));
  g_free(path);
  g_free(png);
}

static void write_bytes(const char *name, const void *data, size_t len) {
  gchar *path = g_build_filename(work_dir, name, NULL);
  assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
  g_free(path);
}

/* A smooth colour scene and a noisy copy, as a.png (under test) and b.png (reference). */
static void write_pair(void) {
  static uint8_t a[W * H * 3], b[W * H * 3];
  uint32_t seed = 7;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        size_t i = ((size_t)y * W + (size_t)x) * 3 + (size_t)c;
        b[i] = (uint8_t)(128 + 100 * sin(x * 0.2 + c) * cos(y * 0.15));
        seed = seed * 1664525u + 1013904223u;
        int noisy = b[i] + (int)(seed >> 27) - 16;
        a[i] = (uint8_t)(noisy < 0 ? 0 : noisy > 255 ? 255 : noisy);
      }
  write_png("a.png", a, W, H, 3);
  write_png("b.png", b, W, H, 3);
  uint8_t grey[W * H];
  for (size_t i = 0; i < (size_t)W * H; i++)
    grey[i] = b[i * 3];
  write_png("grey.png", grey, W, H, 1);
  write_png("small.png", b, W, H - 1, 3);
  write_png("tiny-a.png", a, 8, 8, 3);
  write_png("tiny-b.png", b, 8, 8, 3);
}

/* The engine's scores for two files prepared the way the tool prepares them. */
static void engine_scores(const char *file1, const char *file2, ssimd_color color,
                          ssim_padding padding, double *score, double *channels,
                          size_t *channel_count) {
  struct ssimd_image images[2];
  const char *files[2] = {file1, file2};
  for (int i = 0; i < 2; i++) {
    gchar *path = g_build_filename(work_dir, files[i], NULL);
    gchar *data = NULL;
    gsize len = 0;
    assert_true(g_file_get_contents(path, &data, &len, NULL));
    assert_int_equal(ssimd_decode(data, len, 1u << 24, &images[i], NULL, 0), SSIMD_DECODE_OK);
    g_free(data);
    g_free(path);
  }
  assert_int_equal(ssimd_image_pair_prepare(&images[0], &images[1], color, padding, NULL, 0),
                   SSIMD_DECODE_OK);
  struct ssim_engine_options options;
  ssim_engine_options_init(&options);
  options.backend = "cpu";
  ssim_engine_t *engine = NULL;
  assert_int_equal(ssim_engine_create(&options, &engine, NULL, 0), 0);
  struct ssim_inputs in = {
      .shape = {1, images[0].channels, images[0].height, images[0].width},
      .dtype = images[0].dtype,
      .padding = padding,
      .memory = SSIM_MEMORY_HOST,
      .img1 = images[0].pixels,
      .img2 = images[1].pixels,
  };
  struct ssim_outputs out = {.scores = score, .channel_scores = channels};
  assert_int_equal(ssim_compute(engine, &in, &out), 0);
  *channel_count = images[0].channels;
  ssim_engine_destroy(engine);
  ssimd_image_clear(&images[0]);
  ssimd_image_clear(&images[1]);
}

/* The plain-text answer carries the engine's score and channel scores to 6 decimals. */
static void check_text_scores(const char *color_flag, ssimd_color color, const char *padding_flag,
                              ssim_padding padding) {
  double score = 0, channels[3] = {0};
  size_t count = 0;
  engine_scores("a.png", "b.png", color, padding, &score, channels, &count);
  struct run run = run_tool("compare", "a.png", "b.png", "--color", color_flag, "--padding",
                            padding_flag, "--backend", "cpu", NULL);
  if (run.status != 0)
    fail_msg("exit %d: %s", run.status, run.err);
  assert_string_equal(run.err, "");
  double printed = 0, printed_channels[3] = {0};
  int fields = sscanf(run.out, "ssim %lf\nchannels %lf %lf %lf", &printed, &printed_channels[0],
                      &printed_channels[1], &printed_channels[2]);
  assert_int_equal(fields, 1 + (int)count);
  assert_float_equal(printed, score, 5e-7);
  for (size_t c = 0; c < count; c++)
    assert_float_equal(printed_channels[c], channels[c], 5e-7);
  assert_true(score > 0.3 && score < 0.99); /* a real difference, not identical files */
  assert_non_null(strstr(run.out, "\nworst x="));
  run_free(&run);
}

static void test_scores_match_engine(void **state) {
  (void)state;
  check_text_scores("rgb", SSIMD_COLOR_RGB, "same", SSIM_PADDING_SAME);
  check_text_scores("rgb", SSIMD_COLOR_RGB, "valid", SSIM_PADDING_VALID);
  check_text_scores("luma", SSIMD_COLOR_LUMA, "same", SSIM_PADDING_SAME);
}

/* Grey against colour compares with luma. */
static void test_grey_with_luma(void **state) {
  (void)state;
  struct run run = run_tool("compare", "grey.png", "b.png", "--color=luma", NULL);
  assert_int_equal(run.status, 0);
  assert_non_null(strstr(run.out, "ssim "));
  run_free(&run);
}

static void test_json(void **state) {
  (void)state;
  double score = 0, channels[3] = {0};
  size_t count = 0;
  engine_scores("a.png", "b.png", SSIMD_COLOR_RGB, SSIM_PADDING_VALID, &score, channels, &count);
  struct run run =
      run_tool("compare", "a.png", "b.png", "--json", "--padding", "valid", "--json-map", "f32",
               "--gradient", "img2", "--threshold", "0.99", "--backend", "cpu", NULL);
  /* below the threshold: exit 1, but the answer is printed */
  assert_int_equal(run.status, 1);
  json_error_t error;
  json_t *answer = json_loads(run.out, 0, &error);
  if (answer == NULL)
    fail_msg("--json output does not parse: %s", error.text);
  assert_float_equal(json_real_value(json_object_get(answer, "ssim")), score, 1e-9);
  assert_int_equal(json_array_size(json_object_get(answer, "channels")), 3);
  assert_int_equal(json_integer_value(json_object_get(answer, "width")), W);
  assert_int_equal(json_integer_value(json_object_get(answer, "height")), H);
  assert_string_equal(json_string_value(json_object_get(answer, "padding")), "valid");
  assert_string_equal(json_string_value(json_object_get(answer, "backend")), "cpu");
  const json_t *shape = json_object_get(json_object_get(answer, "map"), "shape");
  assert_int_equal(json_integer_value(json_array_get(shape, 1)), H - 10);
  assert_int_equal(json_integer_value(json_array_get(shape, 2)), W - 10);
  const json_t *gradients = json_object_get(answer, "gradients");
  assert_null(json_object_get(gradients, "img1"));
  assert_non_null(json_object_get(gradients, "img2"));
  assert_true(json_is_false(json_object_get(answer, "pass")));
  const json_t *worst = json_object_get(answer, "worst");
  assert_true(json_integer_value(json_object_get(worst, "x")) >= 5);
  json_decref(answer);
  run_free(&run);

  run = run_tool("compare", "a.png", "b.png", "--threshold", "0.1", NULL);
  assert_int_equal(run.status, 0);
  assert_non_null(strstr(run.out, "\npass true\n"));
  run_free(&run);
}

/* Decode an output file and check it is an 8-bit grey W x H image. */
static void expect_grey_png(const char *name) {
  gchar *path = g_build_filename(work_dir, name, NULL);
  gchar *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &data, &len, NULL))
    fail_msg("%s was not written", name);
  struct ssimd_image image;
  assert_int_equal(ssimd_decode(data, len, 1u << 24, &image, NULL, 0), SSIMD_DECODE_OK);
  assert_int_equal(image.width, W);
  assert_int_equal(image.height, H);
  assert_int_equal(image.channels, 1);
  assert_int_equal(image.dtype, SSIM_DTYPE_U8);
  ssimd_image_clear(&image);
  g_free(data);
  assert_int_equal(g_remove(path), 0);
  g_free(path);
}

static void test_output_files(void **state) {
  (void)state;
  struct run run = run_tool("compare", "a.png", "b.png", "--map", "map.png", "--gradient", "both",
                            "--gradient-out", "grad", NULL);
  if (run.status != 0)
    fail_msg("exit %d: %s", run.status, run.err);
  run_free(&run);
  expect_grey_png("map.png");
  expect_grey_png("grad-img1.png");
  expect_grey_png("grad-img2.png");

  /* --gradient-out alone means both; --gradient img1 writes only that one */
  run = run_tool("compare", "a.png", "b.png", "--gradient=img1", "--gradient-out=g", NULL);
  assert_int_equal(run.status, 0);
  run_free(&run);
  expect_grey_png("g-img1.png");
  gchar *absent = g_build_filename(work_dir, "g-img2.png", NULL);
  assert_false(g_file_test(absent, G_FILE_TEST_EXISTS));
  g_free(absent);
}

static void test_error_paths(void **state) {
  (void)state;
  unsigned char junk[512];
  for (size_t i = 0; i < sizeof(junk); i++)
    junk[i] = (unsigned char)(i * 131 + 17);
  write_bytes("junk.png", junk, sizeof(junk));
  gchar *path = g_build_filename(work_dir, "a.png", NULL);
  gchar *png = NULL;
  gsize len = 0;
  assert_true(g_file_get_contents(path, &png, &len, NULL));
  write_bytes("cut.png", png, len / 2);
  g_free(png);
  g_free(path);

  expect_failure(run_tool("compare", "a.png", "missing.png", NULL), 3, "missing.png");
  expect_failure(run_tool("compare", "junk.png", "b.png", NULL), 4, "junk.png");
  expect_failure(run_tool("compare", "a.png", "cut.png", NULL), 5, "cut.png");
  expect_failure(run_tool("compare", "a.png", "small.png", NULL), 6, "64x47");
  expect_failure(run_tool("compare", "grey.png", "b.png", NULL), 7, "grey");
  expect_failure(run_tool("compare", "tiny-a.png", "tiny-b.png", "--padding", "valid", NULL), 8,
                 "11x11");
  expect_failure(run_tool("compare", "a.png", "b.png", "--map", "no-dir/map.png", NULL), 10,
                 "no-dir/map.png");
  /* bad command lines */
  expect_failure(run_tool("compare", "a.png", NULL), 2, "two image files");
  expect_failure(run_tool("compare", "a.png", "b.png", "c.png", NULL), 2, "too many");
  expect_failure(run_tool("compare", "a.png", "b.png", "--padding", "full", NULL), 2,
                 "padding must be same or valid");
  expect_failure(run_tool("compare", "a.png", "b.png", "--color", NULL), 2, "--color");
  expect_failure(run_tool("compare", "a.png", "b.png", "--bogus", NULL), 2, "--bogus");
  expect_failure(run_tool("compare", "a.png", "b.png", "--threshold", "2", NULL), 2, "threshold");
  expect_failure(run_tool("compare", "a.png", "b.png", "--threads", "-1", NULL), 2, "--threads");
  expect_failure(run_tool("compare", "a.png", "b.png", "--backend", "bogus", NULL), 2, "bogus");
  expect_failure(run_tool("compare", "a.png", "b.png", "--gradient", "img1", NULL), 2,
                 "--gradient-out");
  expect_failure(run_tool("frobnicate", NULL), 2, "frobnicate");
}

static void test_help_and_version(void **state) {
  (void)state;
  struct run run = run_tool("--help", NULL);
  assert_int_equal(run.status, 0);
  assert_non_null(strstr(run.out, "usage: ssim compare"));
  assert_non_null(strstr(run.out, "exit codes"));
  run_free(&run);
  run = run_tool("--version", NULL);
  assert_int_equal(run.status, 0);
  assert_true(strncmp(run.out, "ssim ", 5) == 0);
  run_free(&run);
  run = run_tool(NULL, NULL);
  assert_int_equal(run.status, 2);
  run_free(&run);
}

/* Remove the work directory and what the tests left in it. */
static void remove_work_dir(void) {
  GDir *dir = g_dir_open(work_dir, 0, NULL);
  const gchar *name;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    gchar *path = g_build_filename(work_dir, name, NULL);
    g_remove(path);
    g_free(path);
  }
  if (dir != NULL)
    g_dir_close(dir);
  g_rmdir(work_dir);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PATH-TO-SSIM\n", argv[0]);
    return 2;
  }
  /* g_spawn runs the tool from the work directory, so its path must not be relative. */
  tool_path = g_canonicalize_filename(argv[1], NULL);
  fixture_init();
  work_dir = g_dir_make_tmp("ssim-tool-XXXXXX", NULL);
  if (work_dir == NULL)
    return 1;
  write_pair();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scores_match_engine),
      cmocka_unit_test(test_grey_with_luma),
      cmocka_unit_test(test_json),
      cmocka_unit_test(test_output_files),
      cmocka_unit_test(test_error_paths),
      cmocka_unit_test(test_help_and_version),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  remove_work_dir();
  g_free(work_dir);
  g_free((gchar *)tool_path);
  ssimd_decode_shutdown();
  return failed;
}
