/*
 * response.h: the JSON answer of POST /ssim (API.md), built with jansson.
 * Shared by the daemon and `ssim compare --json`.
 */
#ifndef SSIMD_RESPONSE_H
#define SSIMD_RESPONSE_H

#include "options.h"

#include <jansson.h>
#include <stddef.h>

/* The 32x32 block of the map with the lowest mean SSIM, in image pixel coordinates. */
struct ssimd_worst_block {
  size_t x, y, w, h;
  double ssim;
};

/* Milliseconds spent in each stage of a request. */
struct ssimd_timing {
  double decode, queue, compute, total;
};

/* Everything one answer reports. Pointers are borrowed for the duration of the encode call. */
struct ssimd_result {
  double ssim;
  const double *channel_scores; /* channels values */
  size_t width, height, channels;
  const struct ssimd_options *options;
  const char *backend;               /* engine backend name */
  const struct ssimd_timing *timing; /* NULL: no "timing_ms" member */
  const float *map; /* channels x map_height x map_width; needed when options->map */
  size_t map_height, map_width;
  const float *grad_img1; /* channels x height x width; needed when asked for */
  const float *grad_img2;
  struct ssimd_worst_block worst;
};

/*
 * Find the worst block from the engine's block_means (ceil(map_h/32) x ceil(map_w/32) values),
 * reported in image coordinates (offset by SSIM_HALO for padding=valid), clipped at the edges.
 */
void ssimd_worst_block_find(const float *block_means, size_t map_height, size_t map_width,
                            ssim_padding padding, struct ssimd_worst_block *worst);

/*
 * Build the answer object. Returns a new reference the caller releases with json_decref, or
 * NULL on failure (out of memory, PNG encoding failed) with `detail` set.
 */
json_t *ssimd_response_encode(const struct ssimd_result *result, char *detail, size_t detail_size);

/*
 * Build the error body {"error": {"code", "message", "field"}}; `field` may be NULL.
 * Returns a new reference, or NULL when out of memory.
 */
json_t *ssimd_error_encode(const char *code, const char *message, const char *field);

#endif /* SSIMD_RESPONSE_H */
