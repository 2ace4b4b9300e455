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

/* A grey level from a value on the 0..255 scale: rounded, clamped, NaN black. */
static uint8_t grey_level(float v) {
  return !(v > 0.0f) ? 0 : v >= 255.0f ? 255 : (uint8_t)lrintf(v);
}

/* SSIM on 0..255: value*255. Negative SSIM (anti-correlated structure) is as bad as it gets on
 * this scale: black. */
static void map_to_grey(const float *mean, size_t plane, uint8_t *grey) {
  for (size_t i = 0; i < plane; i++)
    grey[i] = grey_level(mean[i] * 255.0f);
}

/* A gradient on 0..255: 128 + 127*g/max|g|. 128 is zero; a gradient that is zero everywhere has
 * no scale and is all 128. */
static void gradient_to_grey(const float *mean, size_t plane, uint8_t *grey) {
  float peak = 0.0f;
  for (size_t i = 0; i < plane; i++) {
    float magnitude = fabsf(mean[i]);
    if (magnitude > peak)
      peak = magnitude;
  }
  for (size_t i = 0; i < plane; i++)
    grey[i] = grey_level(peak > 0.0f ? 128.0f + 127.0f * mean[i] / peak : 128.0f);
}

/* What both public renderers do: the channel mean of `values`, turned into grey levels by
 * `to_grey`, encoded as a PNG. `what` names the data in the out-of-memory message. */
static int render_channel_mean_png(const float *values, size_t channels, size_t height,
                                   size_t width, void (*to_grey)(const float *, size_t, uint8_t *),
                                   const char *what, void **png, size_t *png_len, char *detail,
                                   size_t detail_size) {
  if (check_args(values, channels, height, width, png, png_len, detail, detail_size) != 0)
    return -1;
  size_t plane = height * width;
  float *mean = channel_mean(values, channels, plane);
  uint8_t *grey = mean != NULL ? malloc(plane) : NULL;
  if (grey == NULL) {
    free(mean);
    if (detail != NULL && detail_size > 0)
      snprintf(detail, detail_size, "out of memory rendering the %s", what);
    return -1;
  }
  to_grey(mean, plane, grey);
  free(mean);
  int rc = encode_grey_png(grey, height, width, png, png_len, detail, detail_size);
  free(grey);
  return rc;
}

int ssimd_render_map_png(const float *map, size_t channels, size_t height, size_t width, void **png,
                         size_t *png_len, char *detail, size_t detail_size) {
  return render_channel_mean_png(map, channels, height, width, map_to_grey, "map", png, png_len,
                                 detail, detail_size);
}

int ssimd_render_gradient_png(const float *gradient, size_t channels, size_t height, size_t width,
                              void **png, size_t *png_len, char *detail, size_t detail_size) {
  return render_channel_mean_png(gradient, channels, height, width, gradient_to_grey, "gradient",
                                 png, png_len, detail, detail_size);
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
