/*
 * images.c: test images and their float64 reference answers.
 */
#include "images.h"

#include "decode.h"
#include "fixtures.h"
#include "reference.h"

#include <glib.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A small deterministic generator (splitmix64): the same images on every run. */
static double next_uniform(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

struct test_file test_image(const struct test_format *format, int width, int height, unsigned seed,
                            int variant) {
  size_t count = (size_t)width * (size_t)height * (size_t)format->bands;
  size_t sample = format->depth == 16 ? 2 : 1;
  unsigned char *pixels = malloc(count * sample);
  assert_non_null(pixels);
  uint64_t state = seed * 7919ull + 17;
  uint64_t noise_state = seed * 104729ull + (uint64_t)variant * 31 + 5;
  double phase = next_uniform(&state) * 6.28;
  double fx = 0.08 + 0.2 * next_uniform(&state), fy = 0.06 + 0.2 * next_uniform(&state);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int b = 0; b < format->bands; b++) {
        double v;
        if (b == 3) {
          v = 0.55 + 0.45 * sin(x * 0.05 + y * 0.03 + phase); /* alpha: partly transparent */
        } else {
          v = 0.5 + 0.3 * sin(x * fx + b * 1.3 + phase) * cos(y * fy - b * 0.7) +
              0.12 * (next_uniform(&noise_state) - 0.5) * (variant ? 1.0 : 0.3);
          if (variant)
            v += 0.08 * sin(x * 0.9 + y * 0.4);
        }
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        size_t i = ((size_t)y * (size_t)width + (size_t)x) * (size_t)format->bands + (size_t)b;
        if (format->depth == 16)
          ((uint16_t *)(void *)pixels)[i] = (uint16_t)lrint(v * 65535);
        else
          pixels[i] = (unsigned char)lrint(v * 255);
      }
  VipsInterpretation interpretation;
  if (format->depth == 16)
    interpretation = format->bands < 3 ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_RGB16;
  else
    interpretation = format->bands < 3 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
  struct test_file file;
  file.data = fixture_encode(pixels, width, height, format->bands,
                             format->depth == 16 ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR,
                             interpretation, format->suffix, &file.len);
  free(pixels);
  return file;
}

static double *alloc_doubles(size_t n) {
  double *p = malloc(n * sizeof(double));
  assert_non_null(p);
  return p;
}

int test_expect_pair(const struct test_file *img1, const struct test_file *img2, ssimd_color color,
                     ssim_padding padding, int with_maps, struct test_expect *out) {
  memset(out, 0, sizeof(*out));
  struct ssimd_image a = {0}, b = {0};
  char detail[256];
  int rc = ssimd_decode(img1->data, img1->len, 1000000000, &a, detail, sizeof(detail));
  if (rc == 0)
    rc = ssimd_decode(img2->data, img2->len, 1000000000, &b, detail, sizeof(detail));
  if (rc == 0)
    rc = ssimd_image_pair_prepare(&a, &b, color, padding, detail, sizeof(detail));
  if (rc != 0) {
    ssimd_image_clear(&a);
    ssimd_image_clear(&b);
    return rc;
  }
  out->channels = a.channels;
  out->height = a.height;
  out->width = a.width;
  ref_map_size(a.height, a.width, padding, &out->map_height, &out->map_width);
  size_t plane = a.channels * a.height * a.width;
  out->channel_scores = alloc_doubles(a.channels);
  if (with_maps) {
    out->map = alloc_doubles(a.channels * out->map_height * out->map_width);
    out->grad1 = alloc_doubles(plane);
    out->grad2 = alloc_doubles(plane);
  }
  struct ssim_inputs in = {
      .shape = {.batch = 1, .channels = a.channels, .height = a.height, .width = a.width},
      .dtype = a.dtype,
      .padding = padding,
      .memory = SSIM_MEMORY_HOST,
      .img1 = a.pixels,
      .img2 = b.pixels,
  };
  struct ref_outputs ref = {
      .scores = &out->score,
      .channel_scores = out->channel_scores,
      .map = out->map,
      .grad_img1 = out->grad1,
      .grad_img2 = out->grad2,
  };
  ref_compute(&in, &ref);
  ssimd_image_clear(&a);
  ssimd_image_clear(&b);
  return 0;
}

void test_expect_free(struct test_expect *expect) {
  free(expect->channel_scores);
  free(expect->map);
  free(expect->grad1);
  free(expect->grad2);
  memset(expect, 0, sizeof(*expect));
}

char *test_base64(const struct test_file *file) {
  return g_base64_encode(file->data, file->len);
}
