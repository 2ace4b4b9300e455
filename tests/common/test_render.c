/*
 * test_render.c: the map and gradient PNGs, decoded back and checked value by value, and
 * ssimd_write_file.
 */
#include "decode.h"
#include "fixtures.h"
#include "render.h"

#include <glib.h>
#include <glib/gstdio.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define W 19
#define H 7

/* Decode a rendered PNG and check it is 8-bit grey of the expected size. */
static void decode_png(const void *png, size_t len, struct ssimd_image *out) {
  char detail[256] = "";
  if (ssimd_decode(png, len, (size_t)W * H, out, detail, sizeof(detail)) != SSIMD_DECODE_OK)
    fail_msg("the rendered PNG does not decode: %s", detail);
  assert_int_equal(out->width, W);
  assert_int_equal(out->height, H);
  assert_int_equal(out->channels, 1);
  assert_int_equal(out->dtype, SSIM_DTYPE_U8);
}

static void test_map_png(void **state) {
  (void)state;
  /* Two channels whose mean covers below -1 .. above 1 and the rounding points. */
  float map[2 * W * H];
  double mean[W * H];
  for (size_t i = 0; i < (size_t)W * H; i++) {
    double m = -0.2 + 1.4 * (double)i / (W * H - 1);
    if (i == 5)
      m = 100.5 / 255.0; /* a value near a rounding point */
    map[i] = (float)(m + 0.125);
    map[W * H + i] = (float)(m - 0.125);
    mean[i] = ((double)map[i] + (double)map[W * H + i]) / 2.0;
  }
  void *png = NULL;
  size_t len = 0;
  char detail[256] = "";
  assert_int_equal(ssimd_render_map_png(map, 2, H, W, &png, &len, detail, sizeof(detail)), 0);
  assert_non_null(png);
  assert_true(len > 8);
  assert_memory_equal(png, "\x89PNG", 4);
  struct ssimd_image image;
  decode_png(png, len, &image);
  const uint8_t *p = image.pixels;
  for (size_t i = 0; i < (size_t)W * H; i++) {
    double v = mean[i] * 255.0;
    int expected = v <= 0.0 ? 0 : v >= 255.0 ? 255 : (int)lrint(v);
    /* float rounding of the mean may move a value sitting on .5 by one */
    if (abs((int)p[i] - expected) > (fabs(v - floor(v) - 0.5) < 1e-4 ? 1 : 0))
      fail_msg("pixel %zu: %d, expected %d (mean %f)", i, p[i], expected, mean[i]);
  }
  assert_int_equal(p[0], 0);
  assert_int_equal(p[W * H - 1], 255);
  ssimd_image_clear(&image);
  g_free(png);
}

static void test_gradient_png(void **state) {
  (void)state;
  float gradient[3 * W * H];
  for (size_t c = 0; c < 3; c++)
    for (size_t i = 0; i < (size_t)W * H; i++)
      gradient[c * W * H + i] = (float)(((double)i - 60.0) * 1e-6 * (double)(c + 1));
  /* channel mean = (i - 60) * 2e-6, the largest magnitude at i = 132: 72 * 2e-6 */
  void *png = NULL;
  size_t len = 0;
  assert_int_equal(ssimd_render_gradient_png(gradient, 3, H, W, &png, &len, NULL, 0), 0);
  struct ssimd_image image;
  decode_png(png, len, &image);
  const uint8_t *p = image.pixels;
  double peak = 72.0;
  for (size_t i = 0; i < (size_t)W * H; i++) {
    double expected = 128.0 + 127.0 * ((double)i - 60.0) / peak;
    assert_true(fabs((double)p[i] - expected) <= 0.5 + 1e-3);
  }
  assert_int_equal(p[60], 128);
  assert_int_equal(p[W * H - 1], 255);
  assert_int_equal(p[0], (int)lrint(128.0 - 127.0 * 60.0 / 72.0));
  ssimd_image_clear(&image);
  g_free(png);

  /* All zero: all 128. */
  memset(gradient, 0, sizeof(gradient));
  assert_int_equal(ssimd_render_gradient_png(gradient, 3, H, W, &png, &len, NULL, 0), 0);
  decode_png(png, len, &image);
  p = image.pixels;
  for (size_t i = 0; i < (size_t)W * H; i++)
    assert_int_equal(p[i], 128);
  ssimd_image_clear(&image);
  g_free(png);
}

static void test_render_bad_arguments(void **state) {
  (void)state;
  float one = 1.0f;
  void *png = NULL;
  size_t len = 0;
  char detail[128] = "";
  assert_int_equal(ssimd_render_map_png(NULL, 1, 1, 1, &png, &len, detail, sizeof(detail)), -1);
  assert_true(strlen(detail) > 0);
  assert_int_equal(ssimd_render_map_png(&one, 1, 0, 1, &png, &len, NULL, 0), -1);
  assert_int_equal(ssimd_render_gradient_png(&one, 0, 1, 1, &png, &len, NULL, 0), -1);
  assert_int_equal(ssimd_render_gradient_png(&one, 1, 1, 1, NULL, &len, NULL, 0), -1);
}

static void test_write_file(void **state) {
  (void)state;
  GError *error = NULL;
  gchar *dir = g_dir_make_tmp("ssimd-render-XXXXXX", &error);
  assert_non_null(dir);
  gchar *path = g_build_filename(dir, "out.bin", NULL);
  const char data[] = "some bytes\0with a zero";
  char detail[256] = "";
  assert_int_equal(ssimd_write_file(path, data, sizeof(data), detail, sizeof(detail)), 0);
  gchar *contents = NULL;
  gsize length = 0;
  assert_true(g_file_get_contents(path, &contents, &length, NULL));
  assert_int_equal(length, sizeof(data));
  assert_memory_equal(contents, data, sizeof(data));
  g_free(contents);
  /* No temporary file is left beside it. */
  gchar *tmp = g_strconcat(path, ".tmp", NULL);
  assert_false(g_file_test(tmp, G_FILE_TEST_EXISTS));
  /* Overwriting works; an empty file is a file. */
  assert_int_equal(ssimd_write_file(path, "", 0, NULL, 0), 0);
  assert_true(g_file_get_contents(path, &contents, &length, NULL));
  assert_int_equal(length, 0);
  g_free(contents);
  assert_int_equal(g_remove(path), 0);

  /* A directory that does not exist: an error that names the path. */
  gchar *missing = g_build_filename(dir, "no-such-dir", "out.png", NULL);
  assert_int_equal(ssimd_write_file(missing, data, sizeof(data), detail, sizeof(detail)), -1);
  assert_non_null(strstr(detail, "no-such-dir"));
  assert_int_equal(ssimd_write_file(NULL, data, 1, NULL, 0), -1);

  assert_int_equal(g_rmdir(dir), 0);
  g_free(missing);
  g_free(tmp);
  g_free(path);
  g_free(dir);
}

int main(void) {
  fixture_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map_png),
      cmocka_unit_test(test_gradient_png),
      cmocka_unit_test(test_render_bad_arguments),
      cmocka_unit_test(test_write_file),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  ssimd_decode_shutdown();
  return failed;
}
