/*
 * test_options.c: ssimd_options_init / ssimd_options_set / the name functions.
 */
#include "options.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_defaults(void **state) {
  (void)state;
  struct ssimd_options options;
  memset(&options, 0xff, sizeof(options));
  ssimd_options_init(&options);
  assert_int_equal(options.padding, SSIM_PADDING_SAME);
  assert_int_equal(options.color, SSIMD_COLOR_RGB);
  assert_int_equal(options.map, SSIMD_OUTPUT_NONE);
  assert_int_equal(options.gradient, SSIMD_GRADIENT_NONE);
  assert_int_equal(options.gradient_format, SSIMD_OUTPUT_F32);
  assert_int_equal(options.has_threshold, 0);
  ssimd_options_init(NULL); /* allowed, does nothing */
}

/* Set one option and return the int value of the field it wrote. */
struct case_value {
  const char *name;
  const char *value;
  int expected;
};

static int field_of(const struct ssimd_options *options, const char *name) {
  if (strcmp(name, "padding") == 0)
    return (int)options->padding;
  if (strcmp(name, "color") == 0)
    return (int)options->color;
  if (strcmp(name, "map") == 0)
    return (int)options->map;
  if (strcmp(name, "gradient") == 0)
    return (int)options->gradient;
  if (strcmp(name, "gradient_format") == 0)
    return (int)options->gradient_format;
  fail_msg("no field %s", name);
  return -1;
}

static void test_every_value(void **state) {
  (void)state;
  static const struct case_value cases[] = {
      {"padding", "valid", SSIM_PADDING_VALID},
      {"padding", "same", SSIM_PADDING_SAME},
      {"color", "luma", SSIMD_COLOR_LUMA},
      {"color", "rgb", SSIMD_COLOR_RGB},
      {"map", "png", SSIMD_OUTPUT_PNG},
      {"map", "f32", SSIMD_OUTPUT_F32},
      {"map", "none", SSIMD_OUTPUT_NONE},
      {"gradient", "img1", SSIMD_GRADIENT_IMG1},
      {"gradient", "img2", SSIMD_GRADIENT_IMG2},
      {"gradient", "both", SSIMD_GRADIENT_BOTH},
      {"gradient", "none", SSIMD_GRADIENT_NONE},
      {"gradient_format", "png", SSIMD_OUTPUT_PNG},
      {"gradient_format", "f32", SSIMD_OUTPUT_F32},
  };
  struct ssimd_options options;
  ssimd_options_init(&options);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char detail[128] = "untouched";
    assert_int_equal(
        ssimd_options_set(&options, cases[i].name, cases[i].value, detail, sizeof(detail)), 0);
    assert_int_equal(field_of(&options, cases[i].name), cases[i].expected);
  }
}

struct bad_case {
  const char *name;
  const char *value;
  const char *detail;
};

static void test_every_bad_value(void **state) {
  (void)state;
  static const struct bad_case cases[] = {
      {"padding", "full", "padding must be same or valid"},
      {"padding", "SAME", "padding must be same or valid"},
      {"padding", "", "padding must be same or valid"},
      {"padding", NULL, "padding must be same or valid"},
      {"color", "grey", "color must be rgb or luma"},
      {"color", "rgb ", "color must be rgb or luma"},
      {"map", "jpeg", "map must be none, png or f32"},
      {"map", "f16", "map must be none, png or f32"},
      {"gradient", "all", "gradient must be none, img1, img2 or both"},
      {"gradient", "1", "gradient must be none, img1, img2 or both"},
      {"gradient_format", "none", "gradient_format must be f32 or png"},
      {"gradient_format", "jpg", "gradient_format must be f32 or png"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct ssimd_options options, before;
    ssimd_options_init(&options);
    before = options;
    char detail[128] = "";
    assert_int_equal(
        ssimd_options_set(&options, cases[i].name, cases[i].value, detail, sizeof(detail)), -1);
    assert_string_equal(detail, cases[i].detail);
    /* A refused value leaves the options as they were. */
    assert_memory_equal(&options, &before, sizeof(options));
    /* detail may be NULL; a short one is truncated, still terminated. */
    assert_int_equal(ssimd_options_set(&options, cases[i].name, cases[i].value, NULL, 0), -1);
    char tiny[8];
    assert_int_equal(ssimd_options_set(&options, cases[i].name, cases[i].value, tiny, sizeof(tiny)),
                     -1);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
  }
}

static void test_unknown_name(void **state) {
  (void)state;
  struct ssimd_options options, before;
  ssimd_options_init(&options);
  before = options;
  assert_int_equal(ssimd_options_set(&options, "colour", "rgb", NULL, 0), 1);
  assert_int_equal(ssimd_options_set(&options, "Padding", "same", NULL, 0), 1);
  assert_int_equal(ssimd_options_set(&options, "", "", NULL, 0), 1);
  assert_int_equal(ssimd_options_set(&options, NULL, "x", NULL, 0), 1);
  assert_memory_equal(&options, &before, sizeof(options));
}

static void test_threshold(void **state) {
  (void)state;
  static const struct {
    const char *text;
    double value;
  } good[] = {{"0.5", 0.5}, {"-1", -1.0},  {"1", 1.0},       {"1.0", 1.0},
              {"0", 0.0},   {"1e-1", 0.1}, {"-0.25", -0.25}, {"+0.95", 0.95}};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    struct ssimd_options options;
    ssimd_options_init(&options);
    assert_int_equal(ssimd_options_set(&options, "threshold", good[i].text, NULL, 0), 0);
    assert_int_equal(options.has_threshold, 1);
    assert_float_equal(options.threshold, good[i].value, 0.0);
  }
  static const char *const bad[] = {"1.0001", "-1.5", "2",   "abc", "",     " 0.5",
                                    "0.5 ",   "0.5x", "nan", "inf", "-inf", "0x0.8p0",
                                    "1e400",  "--1",  ".",   "e",   "0,5"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct ssimd_options options;
    ssimd_options_init(&options);
    assert_int_equal(ssimd_options_set(&options, "threshold", "0.25", NULL, 0), 0);
    char detail[128] = "";
    if (ssimd_options_set(&options, "threshold", bad[i], detail, sizeof(detail)) != -1)
      fail_msg("threshold \"%s\" was accepted", bad[i]);
    assert_string_equal(detail, "threshold must be a number from -1 to 1");
    /* The earlier value stays. */
    assert_float_equal(options.threshold, 0.25, 0.0);
  }
  struct ssimd_options options;
  ssimd_options_init(&options);
  assert_int_equal(ssimd_options_set(&options, "threshold", NULL, NULL, 0), -1);
  assert_int_equal(options.has_threshold, 0);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(ssimd_padding_name(SSIM_PADDING_SAME), "same");
  assert_string_equal(ssimd_padding_name(SSIM_PADDING_VALID), "valid");
  assert_string_equal(ssimd_color_name(SSIMD_COLOR_RGB), "rgb");
  assert_string_equal(ssimd_color_name(SSIMD_COLOR_LUMA), "luma");
  assert_string_equal(ssimd_output_name(SSIMD_OUTPUT_NONE), "none");
  assert_string_equal(ssimd_output_name(SSIMD_OUTPUT_PNG), "png");
  assert_string_equal(ssimd_output_name(SSIMD_OUTPUT_F32), "f32");
  assert_string_equal(ssimd_gradient_name(SSIMD_GRADIENT_NONE), "none");
  assert_string_equal(ssimd_gradient_name(SSIMD_GRADIENT_IMG1), "img1");
  assert_string_equal(ssimd_gradient_name(SSIMD_GRADIENT_IMG2), "img2");
  assert_string_equal(ssimd_gradient_name(SSIMD_GRADIENT_BOTH), "both");
  assert_string_equal(ssimd_padding_name((ssim_padding)7), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),        cmocka_unit_test(test_every_value),
      cmocka_unit_test(test_every_bad_value), cmocka_unit_test(test_unknown_name),
      cmocka_unit_test(test_threshold),       cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
