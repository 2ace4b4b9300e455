/*
 * options.h: the comparison options of API.md (padding, color, map, gradient, gradient_format,
 * threshold), parsed from name/value strings. Shared by the daemon (query parameters, form
 * fields, JSON members) and the `ssim` command (its flags).
 */
#ifndef SSIMD_OPTIONS_H
#define SSIMD_OPTIONS_H

#include "decode.h"
#include "ssim.h"

#include <stddef.h>

typedef enum { SSIMD_OUTPUT_NONE = 0, SSIMD_OUTPUT_PNG = 1, SSIMD_OUTPUT_F32 = 2 } ssimd_output;

/* Bit set of the images whose gradient is asked for. */
typedef enum {
  SSIMD_GRADIENT_NONE = 0,
  SSIMD_GRADIENT_IMG1 = 1,
  SSIMD_GRADIENT_IMG2 = 2,
  SSIMD_GRADIENT_BOTH = 3
} ssimd_gradient;

struct ssimd_options {
  ssim_padding padding;         /* default same */
  ssimd_color color;            /* default rgb */
  ssimd_output map;             /* default none */
  ssimd_gradient gradient;      /* default none */
  ssimd_output gradient_format; /* png or f32; default f32 */
  int has_threshold;            /* threshold given */
  double threshold;             /* in [-1, 1] */
};

/* The defaults of API.md. */
void ssimd_options_init(struct ssimd_options *options);

/*
 * Set the option `name` from its text `value`. Returns 0; 1 when `name` is not an option (the
 * caller decides whether that is an error); -1 for a value the option does not take, with
 * `detail` (may be NULL) saying which values it takes, e.g. "padding must be same or valid".
 */
int ssimd_options_set(struct ssimd_options *options, const char *name, const char *value,
                      char *detail, size_t detail_size);

/* Names of the values, for answers and logs: "same", "rgb", "png", "both", ... */
const char *ssimd_padding_name(ssim_padding padding);
const char *ssimd_color_name(ssimd_color color);
const char *ssimd_output_name(ssimd_output output);
const char *ssimd_gradient_name(ssimd_gradient gradient);

#endif /* SSIMD_OPTIONS_H */
