/*
 * images.h: deterministic test images for the daemon's integration tests, encoded with libvips,
 * and the float64 reference's answer for a pair as the daemon would decode it.
 */
#ifndef SSIMD_TEST_IMAGES_H
#define SSIMD_TEST_IMAGES_H

#include "options.h"

#include <stddef.h>

/* An encoded test image: g_malloc'ed bytes (free with g_free). */
struct test_file {
  void *data;
  size_t len;
};

/* One format of the matrix: bands 1 (grey), 3 (RGB) or 4 (RGBA); depth 8 or 16. */
struct test_format {
  const char *name;
  int bands;
  int depth;
  const char *suffix; /* libvips save suffix, e.g. ".jpg[Q=90]" */
};

/*
 * Encode a width x height image of `format`: smooth waves with detail, a different pattern per
 * `seed`; `variant` 1 adds noise (the distorted image). Fails the calling cmocka test on error.
 */
struct test_file test_image(const struct test_format *format, int width, int height, unsigned seed,
                            int variant);

/* What the reference says about a pair. Arrays malloc'ed; free with test_expect_free. */
struct test_expect {
  size_t channels, height, width, map_height, map_width;
  double score;
  double *channel_scores;
  double *map;           /* channels x map_height x map_width */
  double *grad1, *grad2; /* channels x height x width */
};

/*
 * Decode the two files as the daemon does (ssimd_decode, ssimd_image_pair_prepare) and run the
 * float64 reference of tests/engine on them. `with_maps` 0 skips map and gradients. Returns 0,
 * or the ssimd_decode status when the pair does not decode or compare.
 */
int test_expect_pair(const struct test_file *img1, const struct test_file *img2, ssimd_color color,
                     ssim_padding padding, int with_maps, struct test_expect *out);
void test_expect_free(struct test_expect *expect);

/* Base64 of a file, g_malloc'ed. */
char *test_base64(const struct test_file *file);

#endif /* SSIMD_TEST_IMAGES_H */
