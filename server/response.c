/*
 * response.c: the JSON answer of POST /ssim (API.md), built with jansson.
 *
 * Members are added in the order API.md lists them, so that answers read the same everywhere.
 * Large arrays (maps, gradients) are base64 of little-endian float32 or of a PNG; the base64
 * text is ASCII by construction and is handed to jansson without UTF-8 validation.
 */
#include "response.h"
#include "render.h"

#include <glib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_detail(char *detail, size_t detail_size, const char *message) {
  if (detail != NULL && detail_size > 0)
    snprintf(detail, detail_size, "%s", message);
}

void ssimd_worst_block_find(const float *block_means, size_t map_height, size_t map_width,
                            ssim_padding padding, struct ssimd_worst_block *worst) {
  if (worst == NULL)
    return;
  memset(worst, 0, sizeof(*worst));
  if (block_means == NULL || map_height == 0 || map_width == 0)
    return;
  size_t rows = (map_height + SSIM_BLOCK - 1) / SSIM_BLOCK;
  size_t cols = (map_width + SSIM_BLOCK - 1) / SSIM_BLOCK;
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < rows * cols; i++) {
    /* The first lowest block in reading order wins a tie; NaN never does. */
    if (block_means[i] == block_means[i] &&
        (best == SIZE_MAX || block_means[i] < block_means[best]))
      best = i;
  }
  if (best == SIZE_MAX)
    best = 0;
  size_t bx = (best % cols) * SSIM_BLOCK;
  size_t by = (best / cols) * SSIM_BLOCK;
  /* A valid map starts SSIM_HALO pixels into the image. */
  size_t offset = padding == SSIM_PADDING_VALID ? SSIM_HALO : 0;
  worst->x = bx + offset;
  worst->y = by + offset;
  worst->w = map_width - bx < SSIM_BLOCK ? map_width - bx : SSIM_BLOCK;
  worst->h = map_height - by < SSIM_BLOCK ? map_height - by : SSIM_BLOCK;
  worst->ssim = block_means[best];
}

/* json_object_set_new that turns a NULL value (jansson out of memory, or a non-finite real)
 * into a failure instead of a silently missing member. */
static int set_member(json_t *object, const char *key, json_t *value) {
  if (value == NULL)
    return -1;
  return json_object_set_new(object, key, value);
}

static json_t *shape_array(size_t channels, size_t height, size_t width, int with_channels) {
  return with_channels
             ? json_pack("[III]", (json_int_t)channels, (json_int_t)height, (json_int_t)width)
             : json_pack("[II]", (json_int_t)height, (json_int_t)width);
}

/* A JSON string of base64 text that takes ownership of `text` (g_free'd here). */
static json_t *base64_string(gchar *text) {
  if (text == NULL)
    return NULL;
  json_t *string = json_stringn_nocheck(text, strlen(text));
  g_free(text);
  return string;
}

/* Base64 of `count` floats as little-endian IEEE float32. */
static json_t *f32_base64(const float *values, size_t count) {
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  return base64_string(g_base64_encode((const guchar *)values, count * sizeof(float)));
#else
  uint32_t *swapped = malloc(count * sizeof(uint32_t));
  if (swapped == NULL)
    return NULL;
  for (size_t i = 0; i < count; i++) {
    uint32_t bits;
    memcpy(&bits, &values[i], sizeof(bits));
    swapped[i] = GUINT32_SWAP_LE_BE(bits);
  }
  json_t *string = base64_string(g_base64_encode((const guchar *)swapped, count * sizeof(float)));
  free(swapped);
  return string;
#endif
}

typedef int (*render_fn)(const float *, size_t, size_t, size_t, void **, size_t *, char *, size_t);

/* {"format", "shape", "data"} for a (channels, height, width) float array in `format`. */
static json_t *array_object(const float *values, size_t channels, size_t height, size_t width,
                            ssimd_output format, render_fn render, char *detail,
                            size_t detail_size) {
  json_t *object = json_object();
  if (object == NULL)
    return NULL;
  json_t *data = NULL;
  if (format == SSIMD_OUTPUT_PNG) {
    void *png = NULL;
    size_t png_len = 0;
    if (render(values, channels, height, width, &png, &png_len, detail, detail_size) != 0) {
      json_decref(object);
      return NULL;
    }
    data = base64_string(g_base64_encode(png, png_len));
    g_free(png);
  } else {
    data = f32_base64(values, channels * height * width);
  }
  if (set_member(object, "format", json_string(ssimd_output_name(format))) != 0 ||
      set_member(object, "shape",
                 shape_array(channels, height, width, format == SSIMD_OUTPUT_F32)) != 0 ||
      set_member(object, "data", data) != 0) {
    json_decref(object);
    return NULL;
  }
  return object;
}

static json_t *timing_object(const struct ssimd_timing *timing) {
  return json_pack("{s:f, s:f, s:f, s:f}", "decode", timing->decode, "queue", timing->queue,
                   "compute", timing->compute, "total", timing->total);
}

static json_t *channels_array(const double *scores, size_t channels) {
  json_t *array = json_array();
  for (size_t c = 0; array != NULL && c < channels; c++) {
    json_t *value = json_real(scores[c]);
    if (value == NULL || json_array_append_new(array, value) != 0) {
      json_decref(array);
      return NULL;
    }
  }
  return array;
}

/* "gradients": {"img1": {...}, "img2": {...}} for the images asked for. */
static json_t *gradients_object(const struct ssimd_result *result, char *detail,
                                size_t detail_size) {
  const struct ssimd_options *options = result->options;
  json_t *object = json_object();
  const float *gradients[2] = {result->grad_img1, result->grad_img2};
  const char *names[2] = {"img1", "img2"};
  const ssimd_gradient bits[2] = {SSIMD_GRADIENT_IMG1, SSIMD_GRADIENT_IMG2};
  for (int i = 0; object != NULL && i < 2; i++) {
    if ((options->gradient & bits[i]) == 0)
      continue;
    if (gradients[i] == NULL) {
      set_detail(detail, detail_size, "a gradient was asked for but not computed");
      json_decref(object);
      return NULL;
    }
    json_t *array =
        array_object(gradients[i], result->channels, result->height, result->width,
                     options->gradient_format, ssimd_render_gradient_png, detail, detail_size);
    if (set_member(object, names[i], array) != 0) {
      json_decref(object);
      return NULL;
    }
  }
  return object;
}

json_t *ssimd_response_encode(const struct ssimd_result *result, char *detail, size_t detail_size) {
  if (result == NULL || result->options == NULL ||
      (result->channels > 0 && result->channel_scores == NULL)) {
    set_detail(detail, detail_size, "incomplete result");
    return NULL;
  }
  if (detail != NULL && detail_size > 0)
    detail[0] = '\0';
  const struct ssimd_options *options = result->options;
  json_t *root = json_object();
  if (root == NULL)
    goto nomem;
  if (set_member(root, "ssim", json_real(result->ssim)) != 0 ||
      set_member(root, "channels", channels_array(result->channel_scores, result->channels)) != 0 ||
      set_member(root, "width", json_integer((json_int_t)result->width)) != 0 ||
      set_member(root, "height", json_integer((json_int_t)result->height)) != 0 ||
      set_member(root, "channel_count", json_integer((json_int_t)result->channels)) != 0 ||
      set_member(root, "padding", json_string(ssimd_padding_name(options->padding))) != 0 ||
      set_member(root, "color", json_string(ssimd_color_name(options->color))) != 0 ||
      set_member(root, "backend", json_string(result->backend != NULL ? result->backend : "")) != 0)
    goto nomem;
  if (result->timing != NULL && set_member(root, "timing_ms", timing_object(result->timing)) != 0)
    goto nomem;
  if (options->map != SSIMD_OUTPUT_NONE) {
    if (result->map == NULL) {
      set_detail(detail, detail_size, "a map was asked for but not computed");
      goto fail;
    }
    json_t *map = array_object(result->map, result->channels, result->map_height, result->map_width,
                               options->map, ssimd_render_map_png, detail, detail_size);
    if (set_member(root, "map", map) != 0)
      goto nomem;
  }
  if (options->gradient != SSIMD_GRADIENT_NONE &&
      set_member(root, "gradients", gradients_object(result, detail, detail_size)) != 0)
    goto nomem;
  if (options->has_threshold &&
      set_member(root, "pass", json_boolean(result->ssim >= options->threshold)) != 0)
    goto nomem;
  const struct ssimd_worst_block *worst = &result->worst;
  if (set_member(root, "worst",
                 json_pack("{s:I, s:I, s:I, s:I, s:f}", "x", (json_int_t)worst->x, "y",
                           (json_int_t)worst->y, "w", (json_int_t)worst->w, "h",
                           (json_int_t)worst->h, "ssim", worst->ssim)) != 0)
    goto nomem;
  return root;

nomem:
  /* Keep a more precise reason a helper already gave (a PNG failure, a missing array). */
  if (detail != NULL && detail_size > 0 && detail[0] == '\0')
    set_detail(detail, detail_size, "out of memory, or a score that is not a finite number");
fail:
  json_decref(root);
  return NULL;
}

json_t *ssimd_error_encode(const char *code, const char *message, const char *field) {
  json_t *error = json_pack("{s:s, s:s}", "code", code != NULL ? code : "internal", "message",
                            message != NULL ? message : "");
  if (error == NULL)
    return NULL;
  if (field != NULL && set_member(error, "field", json_string(field)) != 0) {
    json_decref(error);
    return NULL;
  }
  json_t *body = json_object();
  if (body == NULL || json_object_set_new(body, "error", error) != 0) {
    json_decref(body);
    return NULL;
  }
  return body;
}
