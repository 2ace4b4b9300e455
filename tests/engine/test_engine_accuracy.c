/*
 * test_engine_accuracy.c: every output of ssim_compute against the float64 reference, over one
 * table of cases run on every backend: all sizes, channel counts, batch sizes, dtypes and
 * paddings, the full cross product on small images and a few combinations on large ones (the
 * reference is slow, and the suite also runs under sanitizers). The oracle itself is checked
 * first, against the definitions it must agree with.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"

/* ---- The oracle against its definitions -------------------------------------------------- */

/* The separable blur must equal the 2-D window sum it stands for, edges included. */
static void test_reference_blur_is_the_window_sum(void **state) {
  const struct th_ctx *ctx = *state;
  static const size_t sizes[][2] = {{1, 1}, {3, 40}, {23, 17}, {12, 13}};
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    size_t h = sizes[k][0], w = sizes[k][1], n = h * w;
    double *src = th_doubles(n), *fast = th_doubles(n), *direct = th_doubles(n);
    for (size_t i = 0; i < n; i++)
      src[i] = th_rng_uniform(&rng);
    ref_blur(src, h, w, fast);
    ref_blur_direct(src, h, w, direct);
    th_check_abs_d("separable blur vs window sum", fast, direct, n, 1e-14);
    th_free(src);
    th_free(fast);
    th_free(direct);
  }
}

/* The taps are those of sigma 1.5, as fused-ssim rounds them to float. */
static void test_reference_taps(void **state) {
  (void)state;
  double taps[SSIM_WINDOW], sum = 0.0;
  ref_gauss_taps(taps);
  for (int i = 0; i < SSIM_WINDOW; i++) {
    sum += taps[i];
    assert_true(taps[i] == taps[SSIM_WINDOW - 1 - i]);
  }
  assert_true(fabs(sum - 1.0) < 1e-15);
  assert_true(fabs(taps[0] - 0.001028380123898387) < 1e-9);
  assert_true(fabs(taps[3] - 0.10936068743467331) < 1e-8);
  assert_true(fabs(taps[5] - 0.26601171493530273) < 1e-8);
}

/* A 1x1 image sees only the centre tap, so its SSIM has a closed form to compare with. */
static void test_reference_single_pixel_closed_form(void **state) {
  (void)state;
  double taps[SSIM_WINDOW];
  ref_gauss_taps(taps);
  double w = taps[SSIM_HALO] * taps[SSIM_HALO];
  static const double pairs[][2] = {{0.2, 0.7}, {0.5, 0.5}, {0.0, 1.0}, {0.9, 0.1}};
  for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
    double a = pairs[k][0], b = pairs[k][1];
    double mu1 = w * a, mu2 = w * b;
    double s11 = w * a * a - mu1 * mu1, s22 = w * b * b - mu2 * mu2, s12 = w * a * b - mu1 * mu2;
    double c1 = 1e-4, c2 = 9e-4;
    double want =
        (2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2));
    double got;
    ref_plane_map(&a, &b, 1, 1, &got);
    th_check_abs_d("1x1 SSIM", &got, &want, 1, 1e-14);
  }
}

/* SSIM is symmetric, and its gradient by y at (x, y) is its gradient by x at (y, x). */
static void test_reference_symmetry(void **state) {
  const struct th_ctx *ctx = *state;
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  size_t h = 19, w = 14, n = h * w;
  double *x = th_doubles(n), *y = th_doubles(n), *g = th_doubles(n);
  double *map_xy = th_doubles(n), *map_yx = th_doubles(n);
  double *gx_xy = th_doubles(n), *gy_xy = th_doubles(n), *gx_yx = th_doubles(n),
         *gy_yx = th_doubles(n);
  for (size_t i = 0; i < n; i++) {
    x[i] = th_rng_uniform(&rng);
    y[i] = 0.5 * x[i] + 0.5 * th_rng_uniform(&rng);
    g[i] = th_rng_normal(&rng);
  }
  ref_plane_map(x, y, h, w, map_xy);
  ref_plane_map(y, x, h, w, map_yx);
  th_check_abs_d("map(x, y) vs map(y, x)", map_xy, map_yx, n, 1e-15);
  ref_plane_backward(x, y, h, w, g, gx_xy, gy_xy);
  ref_plane_backward(y, x, h, w, g, gx_yx, gy_yx);
  th_check_abs_d("grad_y(x, y) vs grad_x(y, x)", gy_xy, gx_yx, n, 1e-12);
  th_check_abs_d("grad_x(x, y) vs grad_y(y, x)", gx_xy, gy_yx, n, 1e-12);
  /* Identical planes: SSIM 1 everywhere, and a stationary point. */
  ref_plane_map(x, x, h, w, map_xy);
  ref_plane_backward(x, x, h, w, g, gx_xy, gy_xy);
  for (size_t i = 0; i < n; i++) {
    assert_true(fabs(map_xy[i] - 1.0) < 1e-14);
    assert_true(fabs(gx_xy[i]) < 1e-9 && fabs(gy_xy[i]) < 1e-9);
  }
  th_free(x);
  th_free(y);
  th_free(g);
  th_free(map_xy);
  th_free(map_yx);
  th_free(gx_xy);
  th_free(gy_xy);
  th_free(gx_yx);
  th_free(gy_yx);
}

static const struct th_case reference_cases[] = {
    {"reference: separable blur is the 11x11 window sum", test_reference_blur_is_the_window_sum,
     NULL},
    {"reference: Gaussian taps", test_reference_taps, NULL},
    {"reference: 1x1 closed form", test_reference_single_pixel_closed_form, NULL},
    {"reference: symmetry and identical images", test_reference_symmetry, NULL},
};

/* ---- The engine against the oracle ------------------------------------------------------- */

struct accuracy_case {
  size_t batch, channels, height, width;
  ssim_dtype dtype;
  ssim_padding padding;
  double noise;     /* deviation of img2 - img1; spreads the scores over (0, 1) */
  unsigned outputs; /* TH_* flags: which outputs to ask for */
};

static void test_accuracy(void **state) {
  const struct th_ctx *ctx = *state;
  const struct accuracy_case *c = ctx->param;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = {
      .shape = {.batch = c->batch, .channels = c->channels, .height = c->height, .width = c->width},
      .dtype = c->dtype,
      .padding = c->padding,
      .memory = SSIM_MEMORY_HOST};
  th_images_make(&rng, &in, c->noise);
  struct th_buffers b;
  th_buffers_alloc(&b, &in, c->outputs);
  int err = ssim_compute(engine, &in, &b.out);
  if (err != 0)
    fail_msg("ssim_compute: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
  assert_string_equal(ssim_engine_last_error(engine), "");
  th_buffers_reference(&b, &in);
  th_buffers_check(&b);
  th_buffers_free(&b);
  th_images_free(&in);
  th_engine_close(engine);
}

#define MAX_CASES 256
static struct accuracy_case accuracy_cases[MAX_CASES];
static struct th_case cases[MAX_CASES];
static char case_names[MAX_CASES][96];
static size_t case_count;

static const char *outputs_name(unsigned outputs) {
  switch (outputs) {
  case TH_ALL:
    return "all outputs";
  case TH_SCORES:
    return "scores only";
  case TH_SCORES | TH_MAP:
    return "scores+map";
  case TH_SCORES | TH_GRAD2:
    return "scores+grad2";
  case TH_SCORES | TH_CHANNELS | TH_BLOCKS | TH_GRAD1:
    return "no map, grad1";
  default:
    return "some outputs";
  }
}

static void add_case(size_t height, size_t width, size_t channels, size_t batch, ssim_dtype dtype,
                     ssim_padding padding, unsigned outputs) {
  static const double noises[] = {0.02, 0.08, 0.25};
  if (case_count == MAX_CASES)
    abort(); /* the table below outgrew MAX_CASES */
  struct accuracy_case *c = &accuracy_cases[case_count];
  *c = (struct accuracy_case){.batch = batch,
                              .channels = channels,
                              .height = height,
                              .width = width,
                              .dtype = dtype,
                              .padding = padding,
                              .noise = noises[case_count % 3],
                              .outputs = outputs};
  snprintf(case_names[case_count], sizeof(case_names[0]), "%zux%zu c%zu b%zu %s %s noise %.2f, %s",
           height, width, channels, batch, th_dtype_name(dtype), th_padding_name(padding), c->noise,
           outputs_name(outputs));
  cases[case_count] = (struct th_case){case_names[case_count], test_accuracy, c};
  case_count++;
}

static void build_table(void) {
  static const size_t small[][2] = {{1, 1}, {5, 7}, {11, 11}, {12, 13}, {64, 64}};
  static const size_t channel_counts[] = {1, 3, 4};
  static const size_t batches[] = {1, 5};
  static const ssim_dtype dtypes[] = {SSIM_DTYPE_U8, SSIM_DTYPE_U16, SSIM_DTYPE_F32};
  /* Small images: the full cross product of every axis. */
  for (size_t s = 0; s < sizeof(small) / sizeof(small[0]); s++)
    for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++)
      for (size_t c = 0; c < 3; c++)
        for (size_t b = 0; b < 2; b++)
          for (size_t d = 0; d < 3; d++)
            if (padding == SSIM_PADDING_SAME || (small[s][0] >= 11 && small[s][1] >= 11))
              add_case(small[s][0], small[s][1], channel_counts[c], batches[b], dtypes[d],
                       (ssim_padding)padding, TH_ALL);
  /* Larger images: each value of each axis at least once, with edge blocks and odd sizes. */
  add_case(257, 129, 1, 1, SSIM_DTYPE_U8, SSIM_PADDING_SAME, TH_ALL);
  add_case(257, 129, 3, 5, SSIM_DTYPE_U16, SSIM_PADDING_VALID, TH_ALL);
  add_case(257, 129, 4, 1, SSIM_DTYPE_F32, SSIM_PADDING_SAME, TH_ALL);
  add_case(129, 257, 3, 1, SSIM_DTYPE_U8, SSIM_PADDING_VALID, TH_ALL);
  add_case(1080, 1920, 3, 1, SSIM_DTYPE_U8, SSIM_PADDING_SAME, TH_ALL);
  add_case(1080, 1920, 1, 1, SSIM_DTYPE_F32, SSIM_PADDING_VALID, TH_ALL);
  /* Optional outputs left NULL must not disturb the ones asked for. */
  add_case(64, 64, 3, 2, SSIM_DTYPE_U8, SSIM_PADDING_SAME, TH_SCORES);
  add_case(64, 64, 3, 2, SSIM_DTYPE_U8, SSIM_PADDING_VALID, TH_SCORES | TH_MAP);
  add_case(64, 64, 3, 2, SSIM_DTYPE_U16, SSIM_PADDING_SAME, TH_SCORES | TH_GRAD2);
  add_case(40, 70, 4, 2, SSIM_DTYPE_F32, SSIM_PADDING_VALID,
           TH_SCORES | TH_CHANNELS | TH_BLOCKS | TH_GRAD1);
}

int main(void) {
  int failed = th_run("engine accuracy: reference", reference_cases,
                      sizeof(reference_cases) / sizeof(reference_cases[0]), TH_ONCE);
  build_table();
  failed += th_run("engine accuracy", cases, case_count, TH_EVERY_BACKEND);
  return failed != 0;
}
