/*
 * options.c: the comparison options of API.md, parsed from name/value strings.
 *
 * Each enumerated option is one row of a declarative table (name, accepted values, field), so
 * that the parser, the error messages and the names printed in answers come from one place.
 * Names and values are matched exactly (lower case), as API.md writes them: a value such as
 * "Valid" is refused with the list of accepted ones rather than guessed at.
 */
#include "options.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One accepted value of an enumerated option. */
struct option_value {
  const char *text;
  int value;
};

/* An enumerated option: its name, its accepted values (NULL-terminated) and where it is stored. */
struct option_enum {
  const char *name;
  const struct option_value *values;
  size_t offset; /* of the int-sized enum field in struct ssimd_options */
};

static const struct option_value padding_values[] = {
    {"same", SSIM_PADDING_SAME}, {"valid", SSIM_PADDING_VALID}, {NULL, 0}};
static const struct option_value color_values[] = {
    {"rgb", SSIMD_COLOR_RGB}, {"luma", SSIMD_COLOR_LUMA}, {NULL, 0}};
static const struct option_value map_values[] = {
    {"none", SSIMD_OUTPUT_NONE}, {"png", SSIMD_OUTPUT_PNG}, {"f32", SSIMD_OUTPUT_F32}, {NULL, 0}};
static const struct option_value gradient_values[] = {{"none", SSIMD_GRADIENT_NONE},
                                                      {"img1", SSIMD_GRADIENT_IMG1},
                                                      {"img2", SSIMD_GRADIENT_IMG2},
                                                      {"both", SSIMD_GRADIENT_BOTH},
                                                      {NULL, 0}};
/* A gradient is always encoded somehow, so "none" is not a format. */
static const struct option_value gradient_format_values[] = {
    {"f32", SSIMD_OUTPUT_F32}, {"png", SSIMD_OUTPUT_PNG}, {NULL, 0}};

static const struct option_enum option_enums[] = {
    {"padding", padding_values, offsetof(struct ssimd_options, padding)},
    {"color", color_values, offsetof(struct ssimd_options, color)},
    {"map", map_values, offsetof(struct ssimd_options, map)},
    {"gradient", gradient_values, offsetof(struct ssimd_options, gradient)},
    {"gradient_format", gradient_format_values, offsetof(struct ssimd_options, gradient_format)},
};

/* The enum fields are written through an int pointer; that needs them to be int-sized. */
_Static_assert(sizeof(ssim_padding) == sizeof(int) && sizeof(ssimd_color) == sizeof(int) &&
                   sizeof(ssimd_output) == sizeof(int) && sizeof(ssimd_gradient) == sizeof(int),
               "option enums must be int-sized");

void ssimd_options_init(struct ssimd_options *options) {
  if (options == NULL)
    return;
  memset(options, 0, sizeof(*options));
  options->padding = SSIM_PADDING_SAME;
  options->color = SSIMD_COLOR_RGB;
  options->map = SSIMD_OUTPUT_NONE;
  options->gradient = SSIMD_GRADIENT_NONE;
  options->gradient_format = SSIMD_OUTPUT_F32;
  options->has_threshold = 0;
  options->threshold = 0.0;
}

/* Write "NAME must be A, B or C" into detail. */
static void describe_values(const struct option_enum *option, char *detail, size_t detail_size) {
  if (detail == NULL || detail_size == 0)
    return;
  size_t count = 0;
  while (option->values[count].text != NULL)
    count++;
  int used = snprintf(detail, detail_size, "%s must be ", option->name);
  for (size_t i = 0; i < count && used >= 0 && (size_t)used < detail_size; i++) {
    const char *sep = i == 0 ? "" : (i + 1 == count ? " or " : ", ");
    used +=
        snprintf(detail + used, detail_size - (size_t)used, "%s%s", sep, option->values[i].text);
  }
}

static void set_detail(char *detail, size_t detail_size, const char *message) {
  if (detail != NULL && detail_size > 0)
    snprintf(detail, detail_size, "%s", message);
}

/*
 * Parse a threshold: a whole decimal number in [-1, 1]. strtod alone would accept leading
 * blanks, "nan", "inf" and hexadecimal floats; a threshold that is any of those is more likely a
 * client bug than an intent, so they are refused.
 */
static int parse_threshold(const char *value, double *out) {
  if (value[0] == '\0' || value[0] == ' ' || value[0] == '\t')
    return -1;
  for (const char *c = value; *c != '\0'; c++) {
    if (strchr("0123456789+-.eE", *c) == NULL)
      return -1;
  }
  char *end = NULL;
  double parsed = strtod(value, &end);
  if (end == value || *end != '\0' || !isfinite(parsed) || parsed < -1.0 || parsed > 1.0)
    return -1;
  *out = parsed;
  return 0;
}

int ssimd_options_set(struct ssimd_options *options, const char *name, const char *value,
                      char *detail, size_t detail_size) {
  if (options == NULL || name == NULL)
    return 1;
  if (strcmp(name, "threshold") == 0) {
    double threshold = 0.0;
    if (value == NULL || parse_threshold(value, &threshold) != 0) {
      set_detail(detail, detail_size, "threshold must be a number from -1 to 1");
      return -1;
    }
    options->threshold = threshold;
    options->has_threshold = 1;
    return 0;
  }
  for (size_t i = 0; i < sizeof(option_enums) / sizeof(option_enums[0]); i++) {
    const struct option_enum *option = &option_enums[i];
    if (strcmp(name, option->name) != 0)
      continue;
    for (const struct option_value *v = option->values; value != NULL && v->text != NULL; v++) {
      if (strcmp(value, v->text) == 0) {
        *(int *)((char *)options + option->offset) = v->value;
        return 0;
      }
    }
    describe_values(option, detail, detail_size);
    return -1;
  }
  return 1;
}

/* The text of `value` in a value table, or "unknown" for a value outside it. */
static const char *value_name(const struct option_value *values, int value) {
  for (const struct option_value *v = values; v->text != NULL; v++) {
    if (v->value == value)
      return v->text;
  }
  return "unknown";
}

const char *ssimd_padding_name(ssim_padding padding) {
  return value_name(padding_values, (int)padding);
}

const char *ssimd_color_name(ssimd_color color) {
  return value_name(color_values, (int)color);
}

const char *ssimd_output_name(ssimd_output output) {
  return value_name(map_values, (int)output);
}

const char *ssimd_gradient_name(ssimd_gradient gradient) {
  return value_name(gradient_values, (int)gradient);
}
