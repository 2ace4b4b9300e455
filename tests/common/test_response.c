/*
 * test_response.c: the JSON answer, parsed back from its text, member by member; the worst
 * block; the error body.
 */
#include "decode.h"
#include "fixtures.h"
#include "response.h"

#include <glib.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define C 3
#define H 9
#define W 13

/* Serialise and parse again, so that the test sees what a client sees. */
static json_t *round_trip(json_t *value) {
  assert_non_null(value);
  char *text = json_dumps(value, JSON_COMPACT);
  assert_non_null(text);
  json_decref(value);
  json_error_t error;
  json_t *parsed = json_loads(text, 0, &error);
  if (parsed == NULL)
    fail_msg("answer is not JSON: %s", error.text);
  free(text);
  return parsed;
}

static double number(const json_t *object, const char *key) {
  const json_t *value = json_object_get(object, key);
  if (!json_is_number(value))
    fail_msg("member %s is missing or not a number", key);
  return json_number_value(value);
}

static const char *string(const json_t *object, const char *key) {
  const json_t *value = json_object_get(object, key);
  if (!json_is_string(value))
    fail_msg("member %s is missing or not a string", key);
  return json_string_value(value);
}

static void expect_shape(const json_t *array_object, const size_t *dims, size_t count) {
  const json_t *shape = json_object_get(array_object, "shape");
  assert_true(json_is_array(shape));
  assert_int_equal(json_array_size(shape), count);
  for (size_t i = 0; i < count; i++)
    assert_int_equal(json_integer_value(json_array_get(shape, i)), dims[i]);
}

/* Decode the base64 "data" of an f32 array and compare it with the floats, bit for bit. */
static void expect_f32_data(const json_t *array_object, const float *values, size_t count) {
  assert_string_equal(string(array_object, "format"), "f32");
  gsize len = 0;
  guchar *bytes = g_base64_decode(string(array_object, "data"), &len);
  assert_int_equal(len, count * 4);
  for (size_t i = 0; i < count; i++) {
    /* little-endian float32, whatever the host */
    uint32_t bits = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
                    (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
    float value;
    memcpy(&value, &bits, sizeof(value));
    assert_memory_equal(&value, &values[i], sizeof(float));
  }
  g_free(bytes);
}

/* Decode the base64 PNG of "data" into an 8-bit grey image of h x w. */
static void expect_png_data(const json_t *array_object, size_t h, size_t w,
                            struct ssimd_image *image) {
  assert_string_equal(string(array_object, "format"), "png");
  const size_t dims[2] = {h, w};
  expect_shape(array_object, dims, 2);
  gsize len = 0;
  guchar *bytes = g_base64_decode(string(array_object, "data"), &len);
  assert_int_equal(ssimd_decode(bytes, len, h * w, image, NULL, 0), SSIMD_DECODE_OK);
  assert_int_equal(image->width, w);
  assert_int_equal(image->height, h);
  assert_int_equal(image->channels, 1);
  g_free(bytes);
}

struct fixture {
  double channel_scores[C];
  float map[C * H * W];
  float grad1[C * H * W];
  float grad2[C * H * W];
  struct ssimd_options options;
  struct ssimd_timing timing;
  struct ssimd_result result;
};

static void fixture_fill(struct fixture *f) {
  memset(f, 0, sizeof(*f));
  f->channel_scores[0] = 0.9461;
  f->channel_scores[1] = 0.9452;
  f->channel_scores[2] = 0.94610000000000005;
  for (size_t i = 0; i < C * H * W; i++) {
    f->map[i] = (float)(0.5 + 0.5 * sin((double)i));
    f->grad1[i] = (float)(1e-4 * cos((double)i));
    f->grad2[i] = (float)(-3e-5 * (double)(i % (H * W) % 7));
  }
  ssimd_options_init(&f->options);
  f->timing = (struct ssimd_timing){.decode = 8.1, .queue = 0.9, .compute = 0.3, .total = 10.2};
  f->result = (struct ssimd_result){
      .ssim = 0.945815,
      .channel_scores = f->channel_scores,
      .width = W,
      .height = H,
      .channels = C,
      .options = &f->options,
      .backend = "cpu",
      .timing = NULL,
      .map = f->map,
      .map_height = H,
      .map_width = W,
      .grad_img1 = f->grad1,
      .grad_img2 = f->grad2,
      .worst = {.x = 5, .y = 37, .w = 32, .h = 11, .ssim = 0.25},
  };
}

/* Nothing optional asked: exactly the always-present members. */
static void test_minimal_answer(void **state) {
  (void)state;
  struct fixture f;
  fixture_fill(&f);
  char detail[256] = "";
  json_t *answer = round_trip(ssimd_response_encode(&f.result, detail, sizeof(detail)));
  assert_float_equal(number(answer, "ssim"), 0.945815, 0.0);
  const json_t *channels = json_object_get(answer, "channels");
  assert_int_equal(json_array_size(channels), C);
  for (size_t c = 0; c < C; c++)
    assert_float_equal(json_real_value(json_array_get(channels, c)), f.channel_scores[c], 0.0);
  assert_int_equal(json_integer_value(json_object_get(answer, "width")), W);
  assert_int_equal(json_integer_value(json_object_get(answer, "height")), H);
  assert_int_equal(json_integer_value(json_object_get(answer, "channel_count")), C);
  assert_string_equal(string(answer, "padding"), "same");
  assert_string_equal(string(answer, "color"), "rgb");
  assert_string_equal(string(answer, "backend"), "cpu");
  const json_t *worst = json_object_get(answer, "worst");
  assert_int_equal(json_integer_value(json_object_get(worst, "x")), 5);
  assert_int_equal(json_integer_value(json_object_get(worst, "y")), 37);
  assert_int_equal(json_integer_value(json_object_get(worst, "w")), 32);
  assert_int_equal(json_integer_value(json_object_get(worst, "h")), 11);
  assert_float_equal(number(worst, "ssim"), 0.25, 0.0);
  assert_null(json_object_get(answer, "timing_ms"));
  assert_null(json_object_get(answer, "map"));
  assert_null(json_object_get(answer, "gradients"));
  assert_null(json_object_get(answer, "pass"));
  assert_int_equal(json_object_size(answer), 9);
  json_decref(answer);
}

/* Everything asked, as f32: every array round-trips bit for bit. */
static void test_full_answer_f32(void **state) {
  (void)state;
  struct fixture f;
  fixture_fill(&f);
  f.options.padding = SSIM_PADDING_VALID;
  f.options.color = SSIMD_COLOR_LUMA;
  f.options.map = SSIMD_OUTPUT_F32;
  f.options.gradient = SSIMD_GRADIENT_BOTH;
  f.options.has_threshold = 1;
  f.options.threshold = 0.95;
  f.result.timing = &f.timing;
  /* a valid map is smaller than the image */
  f.result.map_height = H - 2;
  f.result.map_width = W - 4;
  json_t *answer = round_trip(ssimd_response_encode(&f.result, NULL, 0));
  assert_string_equal(string(answer, "padding"), "valid");
  assert_string_equal(string(answer, "color"), "luma");
  const json_t *timing = json_object_get(answer, "timing_ms");
  assert_float_equal(number(timing, "decode"), 8.1, 0.0);
  assert_float_equal(number(timing, "queue"), 0.9, 0.0);
  assert_float_equal(number(timing, "compute"), 0.3, 0.0);
  assert_float_equal(number(timing, "total"), 10.2, 0.0);

  const json_t *map = json_object_get(answer, "map");
  const size_t map_dims[3] = {C, H - 2, W - 4};
  expect_shape(map, map_dims, 3);
  expect_f32_data(map, f.map, C * (H - 2) * (W - 4));

  const json_t *gradients = json_object_get(answer, "gradients");
  const size_t image_dims[3] = {C, H, W};
  expect_shape(json_object_get(gradients, "img1"), image_dims, 3);
  expect_f32_data(json_object_get(gradients, "img1"), f.grad1, C * H * W);
  expect_shape(json_object_get(gradients, "img2"), image_dims, 3);
  expect_f32_data(json_object_get(gradients, "img2"), f.grad2, C * H * W);

  assert_true(json_is_false(json_object_get(answer, "pass")));
  json_decref(answer);
}

/* PNG renderings; one gradient only; a threshold that passes (score equal to it). */
static void test_png_answer(void **state) {
  (void)state;
  struct fixture f;
  fixture_fill(&f);
  f.options.map = SSIMD_OUTPUT_PNG;
  f.options.gradient = SSIMD_GRADIENT_IMG2;
  f.options.gradient_format = SSIMD_OUTPUT_PNG;
  f.options.has_threshold = 1;
  f.options.threshold = 0.945815;
  f.result.grad_img1 = NULL; /* not asked, so not needed */
  json_t *answer = round_trip(ssimd_response_encode(&f.result, NULL, 0));

  struct ssimd_image image;
  expect_png_data(json_object_get(answer, "map"), H, W, &image);
  const uint8_t *p = image.pixels;
  for (size_t i = 0; i < H * W; i++) {
    double mean = ((double)f.map[i] + f.map[H * W + i] + f.map[2 * H * W + i]) / 3.0;
    assert_true(fabs(p[i] - mean * 255.0) <= 0.5 + 1e-3);
  }
  ssimd_image_clear(&image);

  const json_t *gradients = json_object_get(answer, "gradients");
  assert_null(json_object_get(gradients, "img1"));
  expect_png_data(json_object_get(gradients, "img2"), H, W, &image);
  p = image.pixels;
  /* grad2 is <= 0 everywhere with zeros at i % 7 == 0: 128 there, 1 at the most negative */
  assert_int_equal(p[0], 128);
  assert_int_equal(p[6], 1);
  ssimd_image_clear(&image);

  assert_true(json_is_true(json_object_get(answer, "pass")));
  json_decref(answer);
}

/* A map or gradient asked for but not given is an error, not a silently missing member. */
static void test_missing_arrays_fail(void **state) {
  (void)state;
  struct fixture f;
  fixture_fill(&f);
  f.options.map = SSIMD_OUTPUT_F32;
  f.result.map = NULL;
  char detail[256] = "";
  assert_null(ssimd_response_encode(&f.result, detail, sizeof(detail)));
  assert_non_null(strstr(detail, "map"));

  fixture_fill(&f);
  f.options.gradient = SSIMD_GRADIENT_IMG1;
  f.result.grad_img1 = NULL;
  detail[0] = '\0';
  assert_null(ssimd_response_encode(&f.result, detail, sizeof(detail)));
  assert_non_null(strstr(detail, "gradient"));

  fixture_fill(&f);
  f.result.ssim = NAN;
  assert_null(ssimd_response_encode(&f.result, detail, sizeof(detail)));
  assert_null(ssimd_response_encode(NULL, NULL, 0));
}

/* Block means of a map_h x map_w map, all 0.9 but one planted block. */
static float *blocks_with(size_t map_h, size_t map_w, size_t planted, float value, size_t *count) {
  size_t rows = (map_h + 31) / 32, cols = (map_w + 31) / 32;
  *count = rows * cols;
  float *blocks = malloc(*count * sizeof(float));
  assert_non_null(blocks);
  for (size_t i = 0; i < *count; i++)
    blocks[i] = 0.9f;
  blocks[planted] = value;
  return blocks;
}

static void test_worst_block(void **state) {
  (void)state;
  struct ssimd_worst_block worst;
  size_t count = 0;
  /* 100 x 70 map: 4 x 3 blocks, the last column 4 wide, the last row 6 high. */
  float *blocks = blocks_with(70, 100, 1 * 4 + 2, 0.1f, &count);
  assert_int_equal(count, 12);
  ssimd_worst_block_find(blocks, 70, 100, SSIM_PADDING_SAME, &worst);
  assert_int_equal(worst.x, 64);
  assert_int_equal(worst.y, 32);
  assert_int_equal(worst.w, 32);
  assert_int_equal(worst.h, 32);
  assert_float_equal(worst.ssim, 0.1f, 0.0);

  /* padding=valid: the map starts 5 pixels into the image */
  ssimd_worst_block_find(blocks, 70, 100, SSIM_PADDING_VALID, &worst);
  assert_int_equal(worst.x, 69);
  assert_int_equal(worst.y, 37);
  free(blocks);

  /* the corner block is clipped to the map's edges */
  blocks = blocks_with(70, 100, 11, -0.5f, &count);
  ssimd_worst_block_find(blocks, 70, 100, SSIM_PADDING_VALID, &worst);
  assert_int_equal(worst.x, 96 + 5);
  assert_int_equal(worst.y, 64 + 5);
  assert_int_equal(worst.w, 4);
  assert_int_equal(worst.h, 6);
  assert_float_equal(worst.ssim, -0.5f, 0.0);
  free(blocks);

  /* a tie goes to the first block in reading order; NaN never wins */
  blocks = blocks_with(64, 64, 3, 0.2f, &count);
  blocks[1] = 0.2f;
  blocks[0] = NAN;
  ssimd_worst_block_find(blocks, 64, 64, SSIM_PADDING_SAME, &worst);
  assert_int_equal(worst.x, 32);
  assert_int_equal(worst.y, 0);
  free(blocks);

  /* a map smaller than one block is one block of its own size */
  float one = 0.7f;
  ssimd_worst_block_find(&one, 3, 20, SSIM_PADDING_SAME, &worst);
  assert_int_equal(worst.x, 0);
  assert_int_equal(worst.w, 20);
  assert_int_equal(worst.h, 3);
  assert_float_equal(worst.ssim, 0.7f, 0.0);
}

static void test_error_body(void **state) {
  (void)state;
  json_t *body =
      round_trip(ssimd_error_encode("size_mismatch", "img1 is 2x2 but img2 is 3x3.", "img2"));
  const json_t *error = json_object_get(body, "error");
  assert_string_equal(string(error, "code"), "size_mismatch");
  assert_string_equal(string(error, "message"), "img1 is 2x2 but img2 is 3x3.");
  assert_string_equal(string(error, "field"), "img2");
  assert_int_equal(json_object_size(body), 1);
  json_decref(body);

  body = round_trip(ssimd_error_encode("not_found", "No such path.", NULL));
  error = json_object_get(body, "error");
  assert_null(json_object_get(error, "field"));
  assert_int_equal(json_object_size(error), 2);
  json_decref(body);
}

int main(void) {
  fixture_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_minimal_answer), cmocka_unit_test(test_full_answer_f32),
      cmocka_unit_test(test_png_answer),     cmocka_unit_test(test_missing_arrays_fail),
      cmocka_unit_test(test_worst_block),    cmocka_unit_test(test_error_body),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  ssimd_decode_shutdown();
  return failed;
}
