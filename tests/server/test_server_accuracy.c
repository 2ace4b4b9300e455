/*
 * test_server_accuracy.c: scores, per-channel scores, maps and both gradients over HTTP agree
 * with the float64 reference, for PNG (8 and 16 bit; grey, RGB, RGBA), JPEG and WebP pairs, in
 * both request forms, both paddings and both colour modes; and the PNG outputs, threshold and
 * worst block are present and well-formed.
 */
#include "client.h"
#include "decode.h"
#include "fixtures.h"
#include "images.h"

#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TOL_SCORE 1e-5
#define TOL_MAP 1e-4
#define TOL_GRAD_REL 1e-3

static struct daemon_proc daemon_under_test;

static const struct test_format formats[] = {
    {"png8_grey", 1, 8, ".png"},       {"png8_rgb", 3, 8, ".png"},
    {"png8_rgba", 4, 8, ".png"},       {"png16_grey", 1, 16, ".png"},
    {"png16_rgb", 3, 16, ".png"},      {"png16_rgba", 4, 16, ".png"},
    {"jpeg_rgb", 3, 8, ".jpg[Q=90]"},  {"jpeg_grey", 1, 8, ".jpg[Q=85]"},
    {"webp_rgb", 3, 8, ".webp[Q=80]"}, {"webp_lossless_rgba", 4, 8, ".webp[lossless]"},
};

static int setup(void **state) {
  (void)state;
  fixture_init();
  /* A window of 0 keeps each request alone: this test is about numbers, not batching. */
  const char *args[] = {"--batch_window_us", "0", NULL};
  return daemon_start(&daemon_under_test, args);
}

static int teardown(void **state) {
  (void)state;
  return daemon_stop(&daemon_under_test) == 0 ? 0 : -1;
}

/* The f32 array of an answer's {"format": "f32", "shape": [...], "data": base64}. */
static float *decode_f32(json_t *object, size_t c, size_t h, size_t w) {
  assert_non_null(object);
  assert_string_equal(json_string_value(json_object_get(object, "format")), "f32");
  json_t *shape = json_object_get(object, "shape");
  assert_int_equal(json_array_size(shape), 3);
  assert_int_equal(json_integer_value(json_array_get(shape, 0)), c);
  assert_int_equal(json_integer_value(json_array_get(shape, 1)), h);
  assert_int_equal(json_integer_value(json_array_get(shape, 2)), w);
  gsize len = 0;
  guchar *raw = g_base64_decode(json_string_value(json_object_get(object, "data")), &len);
  assert_int_equal(len, c * h * w * sizeof(float));
  return (float *)(void *)raw; /* little-endian on every machine this runs on */
}

static void check_map(const float *got, const double *want, size_t n, const char *what) {
  double worst = 0;
  for (size_t i = 0; i < n; i++)
    worst = fmax(worst, fabs(got[i] - want[i]));
  if (!(worst <= TOL_MAP))
    fail_msg("%s: map differs from the reference by %g (tolerance %g)", what, worst, TOL_MAP);
}

static void check_gradient(const float *got, const double *want, size_t n, const char *what) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < n; i++) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  double rel = sqrt(diff) / fmax(sqrt(norm), 1e-30);
  if (!(rel <= TOL_GRAD_REL))
    fail_msg("%s: gradient relative L2 error %g (tolerance %g)", what, rel, TOL_GRAD_REL);
}

static void check_answer(const char *body, const struct test_expect *want, const char *padding,
                         const char *color, const char *what) {
  json_error_t error;
  json_t *root = json_loads(body, 0, &error);
  if (root == NULL)
    fail_msg("%s: the answer is not JSON: %s", what, body);
  double score = json_real_value(json_object_get(root, "ssim"));
  if (!(fabs(score - want->score) <= TOL_SCORE))
    fail_msg("%s: ssim %.9f, reference %.9f", what, score, want->score);
  json_t *channels = json_object_get(root, "channels");
  assert_int_equal(json_array_size(channels), want->channels);
  for (size_t c = 0; c < want->channels; c++) {
    double got = json_number_value(json_array_get(channels, c));
    if (!(fabs(got - want->channel_scores[c]) <= TOL_SCORE))
      fail_msg("%s: channel %zu %.9f, reference %.9f", what, c, got, want->channel_scores[c]);
  }
  assert_int_equal(json_integer_value(json_object_get(root, "width")), want->width);
  assert_int_equal(json_integer_value(json_object_get(root, "height")), want->height);
  assert_int_equal(json_integer_value(json_object_get(root, "channel_count")), want->channels);
  assert_string_equal(json_string_value(json_object_get(root, "padding")), padding);
  assert_string_equal(json_string_value(json_object_get(root, "color")), color);
  assert_non_null(json_object_get(root, "backend"));
  assert_non_null(json_object_get(json_object_get(root, "timing_ms"), "total"));
  json_t *worst = json_object_get(root, "worst");
  assert_non_null(worst);
  assert_true(json_integer_value(json_object_get(worst, "x")) < (json_int_t)want->width);
  assert_true(json_integer_value(json_object_get(worst, "y")) < (json_int_t)want->height);

  size_t plane = want->channels * want->height * want->width;
  float *map =
      decode_f32(json_object_get(root, "map"), want->channels, want->map_height, want->map_width);
  check_map(map, want->map, want->channels * want->map_height * want->map_width, what);
  g_free(map);
  json_t *gradients = json_object_get(root, "gradients");
  float *g1 =
      decode_f32(json_object_get(gradients, "img1"), want->channels, want->height, want->width);
  float *g2 =
      decode_f32(json_object_get(gradients, "img2"), want->channels, want->height, want->width);
  check_gradient(g1, want->grad1, plane, what);
  check_gradient(g2, want->grad2, plane, what);
  g_free(g1);
  g_free(g2);
  assert_null(json_object_get(root, "pass"));
  json_decref(root);
}

/* One format: every form x padding x colour combination. */
static void run_format(const struct test_format *format) {
  struct test_file img1 = test_image(format, 67, 45, 11, 0);
  struct test_file img2 = test_image(format, 67, 45, 11, 1);
  static const char *paddings[] = {"same", "valid"};
  static const char *colors[] = {"rgb", "luma"};
  for (int p = 0; p < 2; p++)
    for (int c = 0; c < 2; c++) {
      struct test_expect want;
      assert_int_equal(test_expect_pair(&img1, &img2, c ? SSIMD_COLOR_LUMA : SSIMD_COLOR_RGB,
                                        p ? SSIM_PADDING_VALID : SSIM_PADDING_SAME, 1, &want),
                       0);
      for (int form = 0; form < 2; form++) {
        char what[160];
        snprintf(what, sizeof(what), "%s %s padding=%s color=%s", format->name,
                 form ? "json" : "multipart", paddings[p], colors[c]);
        struct http_reply reply;
        if (form == 0) {
          /* Options split between the query and the form, as clients do both. */
          char path[160];
          snprintf(path, sizeof(path), "/ssim?padding=%s&map=f32", paddings[p]);
          struct form_part parts[] = {
              {"img1", img1.data, img1.len, "a"},
              {"color", colors[c], strlen(colors[c]), NULL},
              {"gradient", "both", 4, NULL},
              {"img2", img2.data, img2.len, "b"},
          };
          assert_int_equal(http_post_form(daemon_under_test.port, path, parts, 4, NULL, &reply), 0);
        } else {
          char *b1 = test_base64(&img1), *b2 = test_base64(&img2);
          char *body = g_strdup_printf("{\"img1\":\"%s\",\"img2\":\"%s\",\"padding\":\"%s\","
                                       "\"color\":\"%s\",\"map\":\"f32\",\"gradient\":\"both\","
                                       "\"gradient_format\":\"f32\"}",
                                       b1, b2, paddings[p], colors[c]);
          assert_int_equal(http_post_raw(daemon_under_test.port, "/ssim", "application/json", body,
                                         strlen(body), 0, NULL, &reply),
                           0);
          g_free(b1);
          g_free(b2);
          g_free(body);
        }
        if (reply.status != 200)
          fail_msg("%s: status %ld: %s", what, reply.status, reply.body);
        check_answer(reply.body, &want, paddings[p], colors[c], what);
        http_reply_free(&reply);
      }
      test_expect_free(&want);
    }
  g_free(img1.data);
  g_free(img2.data);
}

#define FORMAT_TEST(index)                                                                         \
  static void test_format_##index(void **state) {                                                  \
    (void)state;                                                                                   \
    run_format(&formats[index]);                                                                   \
  }
FORMAT_TEST(0)
FORMAT_TEST(1)
FORMAT_TEST(2)
FORMAT_TEST(3)
FORMAT_TEST(4)
FORMAT_TEST(5)
FORMAT_TEST(6)
FORMAT_TEST(7)
FORMAT_TEST(8)
FORMAT_TEST(9)

/* map=png, gradient_format=png and threshold: PNG images of the right size, and "pass". */
static void test_png_outputs_and_threshold(void **state) {
  (void)state;
  struct test_file img1 = test_image(&formats[1], 40, 30, 3, 0);
  struct test_file img2 = test_image(&formats[1], 40, 30, 3, 1);
  struct test_expect want;
  assert_int_equal(test_expect_pair(&img1, &img2, SSIMD_COLOR_RGB, SSIM_PADDING_SAME, 0, &want), 0);
  for (int above = 0; above < 2; above++) {
    char path[160];
    snprintf(path, sizeof(path), "/ssim?map=png&gradient=img2&gradient_format=png&threshold=%.6f",
             above ? want.score + 0.01 : want.score - 0.01);
    struct form_part parts[] = {{"img1", img1.data, img1.len, "a"},
                                {"img2", img2.data, img2.len, "b"}};
    struct http_reply reply;
    assert_int_equal(http_post_form(daemon_under_test.port, path, parts, 2, NULL, &reply), 0);
    assert_int_equal(reply.status, 200);
    json_t *root = json_loads(reply.body, 0, NULL);
    assert_non_null(root);
    assert_true(json_is_boolean(json_object_get(root, "pass")));
    assert_int_equal(json_is_true(json_object_get(root, "pass")), !above);
    json_t *map = json_object_get(root, "map");
    assert_string_equal(json_string_value(json_object_get(map, "format")), "png");
    json_t *gradients = json_object_get(root, "gradients");
    assert_null(json_object_get(gradients, "img1"));
    json_t *g2 = json_object_get(gradients, "img2");
    assert_string_equal(json_string_value(json_object_get(g2, "format")), "png");
    const char *pngs[] = {json_string_value(json_object_get(map, "data")),
                          json_string_value(json_object_get(g2, "data"))};
    for (int i = 0; i < 2; i++) {
      gsize len = 0;
      guchar *png = g_base64_decode(pngs[i], &len);
      VipsImage *image = vips_image_new_from_buffer(png, len, "", NULL);
      assert_non_null(image);
      assert_int_equal(vips_image_get_width(image), 40);
      assert_int_equal(vips_image_get_height(image), 30);
      assert_int_equal(vips_image_get_bands(image), 1);
      g_object_unref(image);
      g_free(png);
    }
    json_decref(root);
    http_reply_free(&reply);
  }
  test_expect_free(&want);
  g_free(img1.data);
  g_free(img2.data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_0),
      cmocka_unit_test(test_format_1),
      cmocka_unit_test(test_format_2),
      cmocka_unit_test(test_format_3),
      cmocka_unit_test(test_format_4),
      cmocka_unit_test(test_format_5),
      cmocka_unit_test(test_format_6),
      cmocka_unit_test(test_format_7),
      cmocka_unit_test(test_format_8),
      cmocka_unit_test(test_format_9),
      cmocka_unit_test(test_png_outputs_and_threshold),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
