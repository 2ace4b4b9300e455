/*
 * render.c: SSIM maps and gradients as 8-bit greyscale PNG images, with libvips.
 *
 * Both renderings first reduce the channels to their mean, quantise it to one byte per pixel
 * in a buffer of our own, and let libvips wrap that buffer (no copy) for the PNG encoder.
 */
#include "render.h"

#include <vips/vips.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* zlib level of the PNGs: these go back to clients on the request path, where a few percent of
 * size matters less than the milliseconds that higher levels cost on a large map. */
#define RENDER_PNG_COMPRESSION 3

static void set_detail(char *detail, size_t detail_size, const char *message) {
  if (detail != NULL && detail_size > 0)
    snprintf(detail, detail_size, "%s", message);
}

/* The mean over channels of a (channels, plane) float array, in double for the sum, as a newly
 * malloc'ed array of `plane` floats, or NULL when out of memory. */
static float *channel_mean(const float *values, size_t channels, size_t plane) {
  float *mean = malloc(plane == 0 ? 1 : plane * sizeof(float));
  if (mean == NULL)
    return NULL;
  for (size_t i = 0; i < plane; i++) {
    double sum = 0.0;
    for (size_t c = 0; c < channels; c++)
      sum += values[c * plane + i];
    mean[i] = (float)(sum / (double)channels);
  }
  return mean;
}

/* Encode `height` x `width` bytes as a grey PNG into a g_malloc'ed buffer. */
static int encode_grey_png(const uint8_t *grey, size_t height, size_t width, void **png,
                           size_t *png_len, char *detail, size_t detail_size) {
  if (width > INT32_MAX || height > INT32_MAX) {
    set_detail(detail, detail_size, "the image is too large for a PNG");
    return -1;
  }
  VipsImage *image = vips_image_new_from_memory(grey, width * height, (int)width, (int)height, 1,
                                                VIPS_FORMAT_UCHAR);
  if (image == NULL) {
    vips_error_clear();
    set_detail(detail, detail_size, "the PNG image could not be set up");
    return -1;
  }
  image->Type = VIPS_INTERPRETATION_B_W;
  int rc = vips_pngsave_buffer(image, png, png_len, "compression", RENDER_PNG_COMPRESSION, "strip",
                               TRUE, NULL);
  g_object_unref(image);
  if (rc != 0) {
    vips_error_clear();
    set_detail(detail, detail_size, "the PNG encoder failed");
    return -1;
  }
  return 0;
}

/* Shared argument checks: a non-empty, non-overflowing shape and somewhere to put the result. */
static int check_args(const float *values, size_t channels, size_t height, size_t width, void **png,
                      size_t *png_len, char *detail, size_t detail_size) {
  if (values == NULL || png == NULL || png_len == NULL || channels == 0 || height == 0 ||
      width == 0 || height > SIZE_MAX / width || height * width > SIZE_MAX / channels) {
    set_detail(detail, detail_size, "nothing to render: empty or missing data");
    return -1;
  }
  *png = NULL;
  *png_len = 0;
  return 0;
}

int ssimd_render_map_png(const float *map, size_t channels, size_t height, size_t width, void **png,
                         size_t *png_len, char *detail, size_t detail_size) {
  if (check_args(map, channels, height, width, png, png_len, detail, detail_size) != 0)
    return -1;
  size_t plane = height * width;
  float *mean = channel_mean(map, channels, plane);
  uint8_t *grey = mean != NULL ? malloc(plane) : NULL;
  if (grey == NULL) {
    free(mean);
    set_detail(detail, detail_size, "out of memory rendering the map");
    return -1;
  }
  for (size_t i = 0; i < plane; i++) {
    float v = mean[i] * 255.0f;
    /* Negative SSIM (anti-correlated structure) is as bad as it gets on this scale: black. */
    grey[i] = !(v > 0.0f) ? 0 : v >= 255.0f ? 255 : (uint8_t)lrintf(v);
  }
  free(mean);
  int rc = encode_grey_png(grey, height, width, png, png_len, detail, detail_size);
  free(grey);
  return rc;
}

int ssimd_render_gradient_png(const float *gradient, size_t channels, size_t height, size_t width,
                              void **png, size_t *png_len, char *detail, size_t detail_size) {
  if (check_args(gradient, channels, height, width, png, png_len, detail, detail_size) != 0)
    return -1;
  size_t plane = height * width;
  float *mean = channel_mean(gradient, channels, plane);
  uint8_t *grey = mean != NULL ? malloc(plane) : NULL;
  if (grey == NULL) {
    free(mean);
    set_detail(detail, detail_size, "out of memory rendering the gradient");
    return -1;
  }
  float peak = 0.0f;
  for (size_t i = 0; i < plane; i++) {
    float magnitude = fabsf(mean[i]);
    if (magnitude > peak)
      peak = magnitude;
  }
  for (size_t i = 0; i < plane; i++) {
    /* 128 is zero; a zero gradient everywhere has no scale and is all 128. */
    float v = peak > 0.0f ? 128.0f + 127.0f * mean[i] / peak : 128.0f;
    grey[i] = !(v > 0.0f) ? 0 : v >= 255.0f ? 255 : (uint8_t)lrintf(v);
  }
  free(mean);
  int rc = encode_grey_png(grey, height, width, png, png_len, detail, detail_size);
  free(grey);
  return rc;
}

int ssimd_write_file(const char *path, const void *data, size_t len, char *detail,
                     size_t detail_size) {
  if (path == NULL || (data == NULL && len > 0)) {
    set_detail(detail, detail_size, "no file name or no data");
    return -1;
  }
  /* Write beside the target and rename, so that a reader never sees a half-written file and a
   * failed write leaves an earlier file of that name intact. */
  size_t path_len = strlen(path);
  char *tmp = malloc(path_len + 5);
  if (tmp == NULL) {
    set_detail(detail, detail_size, "out of memory");
    return -1;
  }
  memcpy(tmp, path, path_len);
  memcpy(tmp + path_len, ".tmp", 5);
  FILE *file = fopen(tmp, "wb");
  int saved_errno = 0;
  if (file == NULL) {
    saved_errno = errno;
  } else {
    size_t written = len > 0 ? fwrite(data, 1, len, file) : 0;
    if (written != len)
      saved_errno = errno != 0 ? errno : EIO;
    if (fclose(file) != 0 && saved_errno == 0)
      saved_errno = errno;
    if (saved_errno == 0 && rename(tmp, path) != 0)
      saved_errno = errno;
    if (saved_errno != 0)
      remove(tmp);
  }
  free(tmp);
  if (saved_errno != 0) {
    if (detail != NULL && detail_size > 0)
      snprintf(detail, detail_size, "cannot write %s: %s", path, strerror(saved_errno));
    return -1;
  }
  return 0;
}
