/*
 * reference.c: the float64 oracle. Written for obviousness, not speed: every quantity of the
 * metric gets its own full-size plane, and each formula appears once, as in the contract.
 */
#include "reference.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REF_C1 (0.01 * 0.01)
#define REF_C2 (0.03 * 0.03)
#define REF_SIGMA 1.5

static double *ref_alloc(size_t n) {
  /* Zeroed, so that no plane is ever read before it is written, even in the compiler's view. */
  double *p = calloc(n > 0 ? n : 1, sizeof(double));
  /* The oracle has no error path: running out of memory in a test is a broken test machine. */
  if (p == NULL)
    abort();
  return p;
}

void ref_gauss_taps(double taps[SSIM_WINDOW]) {
  double sum = 0.0;
  for (int i = 0; i < SSIM_WINDOW; i++) {
    double d = (double)(i - SSIM_HALO);
    taps[i] = exp(-d * d / (2.0 * REF_SIGMA * REF_SIGMA));
    sum += taps[i];
  }
  for (int i = 0; i < SSIM_WINDOW; i++)
    taps[i] /= sum;
}

void ref_to_double(ssim_dtype dtype, const void *src, size_t n, double *dst) {
  for (size_t i = 0; i < n; i++) {
    switch (dtype) {
    case SSIM_DTYPE_U8:
      dst[i] = ((const uint8_t *)src)[i] / 255.0;
      break;
    case SSIM_DTYPE_U16:
      dst[i] = ((const uint16_t *)src)[i] / 65535.0;
      break;
    case SSIM_DTYPE_F32:
      dst[i] = ((const float *)src)[i];
      break;
    }
  }
}

void ref_map_size(size_t height, size_t width, ssim_padding padding, size_t *map_height,
                  size_t *map_width) {
  size_t crop = padding == SSIM_PADDING_VALID ? 2 * SSIM_HALO : 0;
  assert(height >= crop && width >= crop);
  *map_height = height - crop;
  *map_width = width - crop;
}

/* Pixel (r, c) of a plane with zero padding: 0 outside the image. */
static double at(const double *src, size_t height, size_t width, long r, long c) {
  if (r < 0 || c < 0 || (size_t)r >= height || (size_t)c >= width)
    return 0.0;
  return src[(size_t)r * width + (size_t)c];
}

void ref_blur_direct(const double *src, size_t height, size_t width, double *dst) {
  double taps[SSIM_WINDOW];
  ref_gauss_taps(taps);
  for (size_t r = 0; r < height; r++) {
    for (size_t c = 0; c < width; c++) {
      double sum = 0.0;
      for (int i = 0; i < SSIM_WINDOW; i++)
        for (int j = 0; j < SSIM_WINDOW; j++)
          sum += taps[i] * taps[j] *
                 at(src, height, width, (long)r + i - SSIM_HALO, (long)c + j - SSIM_HALO);
      dst[r * width + c] = sum;
    }
  }
}

void ref_blur(const double *src, size_t height, size_t width, double *dst) {
  double taps[SSIM_WINDOW];
  ref_gauss_taps(taps);
  double *rows = ref_alloc(height * width);
  for (size_t r = 0; r < height; r++) {
    for (size_t c = 0; c < width; c++) {
      double sum = 0.0;
      for (int j = 0; j < SSIM_WINDOW; j++)
        sum += taps[j] * at(src, height, width, (long)r, (long)c + j - SSIM_HALO);
      rows[r * width + c] = sum;
    }
  }
  for (size_t r = 0; r < height; r++) {
    for (size_t c = 0; c < width; c++) {
      double sum = 0.0;
      for (int i = 0; i < SSIM_WINDOW; i++)
        sum += taps[i] * at(rows, height, width, (long)r + i - SSIM_HALO, (long)c);
      dst[r * width + c] = sum;
    }
  }
  free(rows);
}

/* The local statistics of a plane pair, one full-size plane each. */
struct stats {
  double *mu1, *mu2, *s11, *s22, *s12;
};

static void stats_compute(const double *x, const double *y, size_t height, size_t width,
                          struct stats *st) {
  size_t n = height * width;
  double *prod = ref_alloc(n);
  double *e11 = ref_alloc(n), *e22 = ref_alloc(n), *e12 = ref_alloc(n);
  st->mu1 = ref_alloc(n);
  st->mu2 = ref_alloc(n);
  ref_blur(x, height, width, st->mu1);
  ref_blur(y, height, width, st->mu2);
  for (size_t i = 0; i < n; i++)
    prod[i] = x[i] * x[i];
  ref_blur(prod, height, width, e11);
  for (size_t i = 0; i < n; i++)
    prod[i] = y[i] * y[i];
  ref_blur(prod, height, width, e22);
  for (size_t i = 0; i < n; i++)
    prod[i] = x[i] * y[i];
  ref_blur(prod, height, width, e12);
  /* Reuse the second-moment planes for the (co)variances. */
  for (size_t i = 0; i < n; i++) {
    e11[i] = fmax(0.0, e11[i] - st->mu1[i] * st->mu1[i]);
    e22[i] = fmax(0.0, e22[i] - st->mu2[i] * st->mu2[i]);
    e12[i] = e12[i] - st->mu1[i] * st->mu2[i];
  }
  st->s11 = e11;
  st->s22 = e22;
  st->s12 = e12;
  free(prod);
}

static void stats_free(struct stats *st) {
  free(st->mu1);
  free(st->mu2);
  free(st->s11);
  free(st->s22);
  free(st->s12);
}

/* SSIM at one pixel and its partials; the partials are zero where S is clamped to [-1, 1]. */
struct pixel {
  double s;
  double d_mu1, d_mu2, d_s11, d_s22, d_s12;
};

static struct pixel pixel_ssim(double mu1, double mu2, double s11, double s22, double s12) {
  double a = mu1 * mu1 + mu2 * mu2 + REF_C1;
  double b = s11 + s22 + REF_C2;
  double cn = 2.0 * mu1 * mu2 + REF_C1;
  double d = 2.0 * s12 + REF_C2;
  struct pixel p = {.s = cn * d / (a * b)};
  if (p.s > 1.0 || p.s < -1.0) {
    p.s = p.s > 1.0 ? 1.0 : -1.0;
    return p;
  }
  /* d/dmu holds the second moments G*(x^2), G*(xy) fixed, so it includes the -mu^2 and -mu1 mu2
   * terms of the (co)variances; d/ds11 etc. are then the derivatives by those second moments. */
  p.d_mu1 = 2.0 * mu2 * d / (a * b) - 2.0 * mu2 * cn / (a * b) - 2.0 * mu1 * cn * d / (a * a * b) +
            2.0 * mu1 * cn * d / (a * b * b);
  p.d_mu2 = 2.0 * mu1 * d / (a * b) - 2.0 * mu1 * cn / (a * b) - 2.0 * mu2 * cn * d / (a * a * b) +
            2.0 * mu2 * cn * d / (a * b * b);
  p.d_s11 = -cn * d / (a * b * b);
  p.d_s22 = p.d_s11;
  p.d_s12 = 2.0 * cn / (a * b);
  return p;
}

void ref_plane_map(const double *x, const double *y, size_t height, size_t width, double *map) {
  struct stats st;
  stats_compute(x, y, height, width, &st);
  for (size_t i = 0; i < height * width; i++)
    map[i] = pixel_ssim(st.mu1[i], st.mu2[i], st.s11[i], st.s22[i], st.s12[i]).s;
  stats_free(&st);
}

void ref_plane_backward(const double *x, const double *y, size_t height, size_t width,
                        const double *g, double *grad_x, double *grad_y) {
  size_t n = height * width;
  struct stats st;
  stats_compute(x, y, height, width, &st);
  double *a1 = ref_alloc(n), *a2 = ref_alloc(n), *b11 = ref_alloc(n), *b22 = ref_alloc(n),
         *c12 = ref_alloc(n);
  for (size_t i = 0; i < n; i++) {
    struct pixel p = pixel_ssim(st.mu1[i], st.mu2[i], st.s11[i], st.s22[i], st.s12[i]);
    a1[i] = g[i] * p.d_mu1;
    a2[i] = g[i] * p.d_mu2;
    b11[i] = g[i] * p.d_s11;
    b22[i] = g[i] * p.d_s22;
    c12[i] = g[i] * p.d_s12;
  }
  stats_free(&st);
  /* The zero-padded Gaussian blur is symmetric, so it is its own adjoint: d/dx of G*v at every
   * pixel, weighted by u, is G*u. Hence dL/dx = G*(g dS/dmu1) + 2x G*(g dS/ds11) + y G*(g dS/ds12).
   */
  double *blurred = ref_alloc(n);
  if (grad_x != NULL) {
    ref_blur(a1, height, width, grad_x);
    ref_blur(b11, height, width, blurred);
    for (size_t i = 0; i < n; i++)
      grad_x[i] += 2.0 * x[i] * blurred[i];
    ref_blur(c12, height, width, blurred);
    for (size_t i = 0; i < n; i++)
      grad_x[i] += y[i] * blurred[i];
  }
  if (grad_y != NULL) {
    ref_blur(a2, height, width, grad_y);
    ref_blur(b22, height, width, blurred);
    for (size_t i = 0; i < n; i++)
      grad_y[i] += 2.0 * y[i] * blurred[i];
    ref_blur(c12, height, width, blurred);
    for (size_t i = 0; i < n; i++)
      grad_y[i] += x[i] * blurred[i];
  }
  free(blurred);
  free(a1);
  free(a2);
  free(b11);
  free(b22);
  free(c12);
}

static size_t dtype_size(ssim_dtype dtype) {
  return dtype == SSIM_DTYPE_U8 ? 1 : dtype == SSIM_DTYPE_U16 ? 2 : 4;
}

/* Plane p (pair * channels + channel) of an NCHW buffer of `dtype`, as [0, 1]-scaled doubles. */
static void plane_load(const struct ssim_inputs *in, const void *img, size_t p, double *dst) {
  size_t plane = in->shape.height * in->shape.width;
  const char *base = (const char *)img + p * plane * dtype_size(in->dtype);
  ref_to_double(in->dtype, base, plane, dst);
}

void ref_compute(const struct ssim_inputs *in, const struct ref_outputs *out) {
  const struct ssim_shape *s = &in->shape;
  size_t plane = s->height * s->width, mh, mw;
  ref_map_size(s->height, s->width, in->padding, &mh, &mw);
  size_t crop = (s->height - mh) / 2, blocks_y = (mh + SSIM_BLOCK - 1) / SSIM_BLOCK,
         blocks_x = (mw + SSIM_BLOCK - 1) / SSIM_BLOCK;
  double *x = ref_alloc(plane), *y = ref_alloc(plane), *full = ref_alloc(plane);
  double *g = ref_alloc(plane), *gx = ref_alloc(plane), *gy = ref_alloc(plane);
  double *block_sums = ref_alloc(blocks_y * blocks_x);
  /* The score is the mean over C * map_h * map_w map values, so each has weight 1 / that, and
   * the pixels cropped away by valid padding have none. */
  double weight = 1.0 / ((double)s->channels * (double)mh * (double)mw);
  for (size_t r = 0; r < s->height; r++)
    for (size_t c = 0; c < s->width; c++)
      g[r * s->width + c] = (r >= crop && r < crop + mh && c >= crop && c < crop + mw) ? weight : 0;

  for (size_t n = 0; n < s->batch; n++) {
    double pair_sum = 0.0;
    memset(block_sums, 0, blocks_y * blocks_x * sizeof(double));
    for (size_t ch = 0; ch < s->channels; ch++) {
      size_t p = n * s->channels + ch;
      plane_load(in, in->img1, p, x);
      plane_load(in, in->img2, p, y);
      ref_plane_map(x, y, s->height, s->width, full);
      double channel_sum = 0.0;
      for (size_t r = 0; r < mh; r++) {
        for (size_t c = 0; c < mw; c++) {
          double v = full[(r + crop) * s->width + c + crop];
          channel_sum += v;
          block_sums[(r / SSIM_BLOCK) * blocks_x + c / SSIM_BLOCK] += v;
          if (out->map != NULL)
            out->map[(p * mh + r) * mw + c] = v;
        }
      }
      pair_sum += channel_sum;
      if (out->channel_scores != NULL)
        out->channel_scores[p] = channel_sum / ((double)mh * (double)mw);
      if (out->grad_img1 != NULL || out->grad_img2 != NULL) {
        ref_plane_backward(x, y, s->height, s->width, g, gx, gy);
        if (out->grad_img1 != NULL)
          memcpy(out->grad_img1 + p * plane, gx, plane * sizeof(double));
        if (out->grad_img2 != NULL)
          memcpy(out->grad_img2 + p * plane, gy, plane * sizeof(double));
      }
    }
    if (out->scores != NULL)
      out->scores[n] = pair_sum * weight;
    if (out->block_means != NULL) {
      for (size_t by = 0; by < blocks_y; by++) {
        for (size_t bx = 0; bx < blocks_x; bx++) {
          /* Edge blocks are clipped: average over the pixels they do hold. */
          size_t bh = (by + 1) * SSIM_BLOCK <= mh ? SSIM_BLOCK : mh - by * SSIM_BLOCK;
          size_t bw = (bx + 1) * SSIM_BLOCK <= mw ? SSIM_BLOCK : mw - bx * SSIM_BLOCK;
          out->block_means[(n * blocks_y + by) * blocks_x + bx] =
              block_sums[by * blocks_x + bx] / ((double)s->channels * (double)bh * (double)bw);
        }
      }
    }
  }
  free(x);
  free(y);
  free(full);
  free(g);
  free(gx);
  free(gy);
  free(block_sums);
}

void ref_backward(const struct ssim_inputs *in, const float *grad_map, double *grad_img1,
                  double *grad_img2) {
  const struct ssim_shape *s = &in->shape;
  size_t plane = s->height * s->width, mh, mw;
  ref_map_size(s->height, s->width, in->padding, &mh, &mw);
  size_t crop = (s->height - mh) / 2;
  double *x = ref_alloc(plane), *y = ref_alloc(plane), *g = ref_alloc(plane);
  for (size_t p = 0; p < s->batch * s->channels; p++) {
    plane_load(in, in->img1, p, x);
    plane_load(in, in->img2, p, y);
    /* Embed the (possibly cropped) upstream gradient in a same-size plane, zero outside. */
    memset(g, 0, plane * sizeof(double));
    for (size_t r = 0; r < mh; r++)
      for (size_t c = 0; c < mw; c++)
        g[(r + crop) * s->width + c + crop] = grad_map[(p * mh + r) * mw + c];
    ref_plane_backward(x, y, s->height, s->width, g,
                       grad_img1 != NULL ? grad_img1 + p * plane : NULL,
                       grad_img2 != NULL ? grad_img2 + p * plane : NULL);
  }
  free(x);
  free(y);
  free(g);
}
