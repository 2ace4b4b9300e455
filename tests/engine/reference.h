/*
 * reference.h: the float64 oracle of the engine tests.
 *
 * A plain, deliberately unoptimised SSIM (Wang et al. 2004 as fused-ssim computes it) and its
 * backward pass, in double arithmetic, written from the formulas of the metric and nothing of
 * the engine: it shares only the public types of ssim.h. Gaussian taps, C1 and C2 are computed
 * here in double rather than taken from engine/ssim_constants.h, so that a wrong constant in
 * the engine cannot hide in the oracle too.
 *
 * Every function is single-threaded and allocates only what it frees before returning.
 */
#ifndef SSIM_TEST_REFERENCE_H
#define SSIM_TEST_REFERENCE_H

#include <stddef.h>

#include "ssim.h"

/* The 11 taps of the 1-D Gaussian, sigma 1.5, normalised to sum 1. */
void ref_gauss_taps(double taps[SSIM_WINDOW]);

/* Converts n elements of `dtype` to [0, 1]-scaled doubles (u8 / 255, u16 / 65535, f32 as is). */
void ref_to_double(ssim_dtype dtype, const void *src, size_t n, double *dst);

/* Map size of an image under `padding`; the caller has checked that VALID has >= 11x11. */
void ref_map_size(size_t height, size_t width, ssim_padding padding, size_t *map_height,
                  size_t *map_width);

/* Zero-padded 11x11 Gaussian blur of a height x width plane, as two 1-D passes. */
void ref_blur(const double *src, size_t height, size_t width, double *dst);

/* The same blur as a direct 2-D window sum: the definition, used to check ref_blur. */
void ref_blur_direct(const double *src, size_t height, size_t width, double *dst);

/* The same-padded SSIM map of one plane pair (height x width each, [0, 1]-scaled). */
void ref_plane_map(const double *x, const double *y, size_t height, size_t width, double *map);

/*
 * Backward pass of one plane pair: given g = dL/dmap of the same-padded map (height x width;
 * zero where a valid map is cropped away), writes dL/dx and dL/dy. Either output may be NULL.
 */
void ref_plane_backward(const double *x, const double *y, size_t height, size_t width,
                        const double *g, double *grad_x, double *grad_y);

/* What ref_compute writes; every pointer may be NULL. Sizes and layout as in ssim_outputs. */
struct ref_outputs {
  double *scores;
  double *channel_scores;
  double *map;
  double *block_means;
  double *grad_img1;
  double *grad_img2;
};

/* ssim_compute in float64: the host-memory images of `in` to the outputs asked for. */
void ref_compute(const struct ssim_inputs *in, const struct ref_outputs *out);

/* ssim_backward in float64: dL/dimg1 and/or dL/dimg2 (either may be NULL) from dL/dmap. */
void ref_backward(const struct ssim_inputs *in, const float *grad_map, double *grad_img1,
                  double *grad_img2);

#endif /* SSIM_TEST_REFERENCE_H */
