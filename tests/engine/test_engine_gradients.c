/*
 * test_engine_gradients.c: the gradients. First the reference's analytic backward pass against
 * central finite differences of its own forward pass (tight: both are float64); then, on every
 * backend, the engine's d score / d img against those finite differences and the reference, and
 * ssim_backward with a random upstream dL/dmap against the reference.
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

/* Step of the central differences: small enough for the O(h^2) truncation error, large enough
 * that rounding (~1e-16 / h) stays far below the 1e-6 the reference must meet. */
#define FD_STEP 1e-5
#define FD_SIZE 16

/* L = sum over planes and map pixels of weight * map, the map cropped by `crop` on each side. */
static double plane_loss(const double *x, const double *y, size_t planes, size_t h, size_t w,
                         size_t crop, const double *weights) {
  double *map = th_doubles(h * w), loss = 0.0;
  for (size_t p = 0; p < planes; p++) {
    ref_plane_map(x + p * h * w, y + p * h * w, h, w, map);
    for (size_t r = crop; r < h - crop; r++)
      for (size_t c = crop; c < w - crop; c++)
        loss += weights[p * h * w + r * w + c] * map[r * w + c];
  }
  th_free(map);
  return loss;
}

/* dL/dv for every element of v (which is x or y), by central differences. */
static void finite_differences(double *x, double *y, double *v, size_t planes, size_t h, size_t w,
                               size_t crop, const double *weights, double *grad) {
  for (size_t i = 0; i < planes * h * w; i++) {
    double saved = v[i];
    v[i] = saved + FD_STEP;
    double up = plane_loss(x, y, planes, h, w, crop, weights);
    v[i] = saved - FD_STEP;
    double down = plane_loss(x, y, planes, h, w, crop, weights);
    v[i] = saved;
    grad[i] = (up - down) / (2.0 * FD_STEP);
  }
}

static void check_rel_l2_d(const char *what, const double *got, const double *want, size_t n,
                           double tol) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; i++) {
    err += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  assert_true(norm > 0.0);
  double rel = sqrt(err / norm);
  if (!(rel <= tol))
    fail_msg("%s: relative L2 error %.3g > %.3g", what, rel, tol);
}

/* Weights of the mean score: 1 / (planes * map pixels) inside the crop, 0 outside. */
static void mean_weights(size_t planes, size_t h, size_t w, size_t crop, double *weights) {
  double each = 1.0 / ((double)planes * (double)(h - 2 * crop) * (double)(w - 2 * crop));
  for (size_t p = 0; p < planes; p++)
    for (size_t r = 0; r < h; r++)
      for (size_t c = 0; c < w; c++)
        weights[(p * h + r) * w + c] =
            (r >= crop && r < h - crop && c >= crop && c < w - crop) ? each : 0.0;
}

/* ---- The reference against finite differences -------------------------------------------- */

struct reference_fd_case {
  ssim_padding padding;
  int random_upstream; /* 0: the mean score's weights; 1: a random dL/dmap */
};

static void test_reference_fd(void **state) {
  const struct th_ctx *ctx = *state;
  const struct reference_fd_case *c = ctx->param;
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  size_t h = FD_SIZE, w = FD_SIZE, n = h * w, crop = c->padding == SSIM_PADDING_VALID ? 5 : 0;
  double *x = th_doubles(n), *y = th_doubles(n), *weights = th_doubles(n);
  double *gx = th_doubles(n), *gy = th_doubles(n), *fdx = th_doubles(n), *fdy = th_doubles(n);
  for (size_t i = 0; i < n; i++) {
    x[i] = 0.2 + 0.6 * th_rng_uniform(&rng);
    y[i] = 0.7 * x[i] + 0.3 * th_rng_uniform(&rng);
  }
  mean_weights(1, h, w, crop, weights);
  if (c->random_upstream)
    for (size_t i = 0; i < n; i++)
      weights[i] = weights[i] != 0.0 ? th_rng_normal(&rng) : 0.0;
  ref_plane_backward(x, y, h, w, weights, gx, gy);
  finite_differences(x, y, x, 1, h, w, crop, weights, fdx);
  finite_differences(x, y, y, 1, h, w, crop, weights, fdy);
  check_rel_l2_d("reference dL/dx vs finite differences", gx, fdx, n, 1e-6);
  check_rel_l2_d("reference dL/dy vs finite differences", gy, fdy, n, 1e-6);
  th_free(x);
  th_free(y);
  th_free(weights);
  th_free(gx);
  th_free(gy);
  th_free(fdx);
  th_free(fdy);
}

static const struct reference_fd_case reference_fd_params[] = {{SSIM_PADDING_SAME, 0},
                                                               {SSIM_PADDING_VALID, 0},
                                                               {SSIM_PADDING_SAME, 1},
                                                               {SSIM_PADDING_VALID, 1}};

static const struct th_case reference_cases[] = {
    {"reference vs finite differences, same, mean score", test_reference_fd,
     &reference_fd_params[0]},
    {"reference vs finite differences, valid, mean score", test_reference_fd,
     &reference_fd_params[1]},
    {"reference vs finite differences, same, random dL/dmap", test_reference_fd,
     &reference_fd_params[2]},
    {"reference vs finite differences, valid, random dL/dmap", test_reference_fd,
     &reference_fd_params[3]},
};

/* ---- The engine's d score / d img against finite differences and the reference ----------- */

enum target { TARGET_IMG1 = 1, TARGET_IMG2 = 2, TARGET_BOTH = 3 };

static const char *target_name(enum target t) {
  return t == TARGET_IMG1 ? "img1" : t == TARGET_IMG2 ? "img2" : "both";
}

struct engine_fd_case {
  enum target target;
  ssim_padding padding;
  ssim_dtype dtype;
};

static void test_engine_fd(void **state) {
  const struct th_ctx *ctx = *state;
  const struct engine_fd_case *c = ctx->param;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  /* Two channels, so that the 1 / channels of the mean is part of what is checked. */
  struct ssim_inputs in = {
      .shape = {.batch = 1, .channels = 2, .height = FD_SIZE, .width = FD_SIZE},
      .dtype = c->dtype,
      .padding = c->padding};
  th_images_make(&rng, &in, 0.1);
  size_t n = th_elements(&in.shape), crop = c->padding == SSIM_PADDING_VALID ? 5 : 0;
  struct th_buffers b;
  th_buffers_alloc(&b, &in,
                   TH_SCORES | (c->target & TARGET_IMG1 ? TH_GRAD1 : 0) |
                       (c->target & TARGET_IMG2 ? TH_GRAD2 : 0));
  int err = ssim_compute(engine, &in, &b.out);
  if (err != 0)
    fail_msg("ssim_compute: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
  th_buffers_reference(&b, &in);
  th_buffers_check(&b);

  /* Finite differences of the mean score in [0, 1]-scaled units, whatever the dtype. */
  double *x = th_doubles(n), *y = th_doubles(n), *weights = th_doubles(n), *fd = th_doubles(n);
  ref_to_double(in.dtype, in.img1, n, x);
  ref_to_double(in.dtype, in.img2, n, y);
  mean_weights(2, FD_SIZE, FD_SIZE, crop, weights);
  if (b.out.grad_img1 != NULL) {
    finite_differences(x, y, x, 2, FD_SIZE, FD_SIZE, crop, weights, fd);
    check_rel_l2_d("reference grad_img1 vs finite differences", b.ref.grad_img1, fd, n, 1e-6);
    th_check_rel_l2("engine grad_img1 vs finite differences", b.out.grad_img1, fd, n,
                    TH_TOL_GRAD_REL, b.grad_scale);
  }
  if (b.out.grad_img2 != NULL) {
    finite_differences(x, y, y, 2, FD_SIZE, FD_SIZE, crop, weights, fd);
    check_rel_l2_d("reference grad_img2 vs finite differences", b.ref.grad_img2, fd, n, 1e-6);
    th_check_rel_l2("engine grad_img2 vs finite differences", b.out.grad_img2, fd, n,
                    TH_TOL_GRAD_REL, b.grad_scale);
  }
  th_free(x);
  th_free(y);
  th_free(weights);
  th_free(fd);
  th_buffers_free(&b);
  th_images_free(&in);
  th_engine_close(engine);
}

/* ---- ssim_backward with a random upstream gradient --------------------------------------- */

struct backward_case {
  enum target target;
  ssim_padding padding;
  ssim_dtype dtype;
  size_t batch, channels, height, width;
};

static void test_backward(void **state) {
  const struct th_ctx *ctx = *state;
  const struct backward_case *c = ctx->param;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = {
      .shape = {.batch = c->batch, .channels = c->channels, .height = c->height, .width = c->width},
      .dtype = c->dtype,
      .padding = c->padding};
  th_images_make(&rng, &in, 0.08);
  size_t n = th_elements(&in.shape);
  float *grad_map = th_grad_map_random(&rng, &in, 1.0);
  float *g1 = c->target & TARGET_IMG1 ? th_floats_poisoned(n) : NULL;
  float *g2 = c->target & TARGET_IMG2 ? th_floats_poisoned(n) : NULL;
  int err = ssim_backward(engine, &in, grad_map, g1, g2);
  if (err != 0)
    fail_msg("ssim_backward: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
  double *r1 = g1 != NULL ? th_doubles(n) : NULL, *r2 = g2 != NULL ? th_doubles(n) : NULL;
  ref_backward(&in, grad_map, r1, r2);
  /* A typical element: an upstream of deviation 1 spread over the window's ~1 pixel. */
  if (g1 != NULL)
    th_check_rel_l2("dL/dimg1", g1, r1, n, TH_TOL_GRAD_REL, 1.0);
  if (g2 != NULL)
    th_check_rel_l2("dL/dimg2", g2, r2, n, TH_TOL_GRAD_REL, 1.0);
  th_free(grad_map);
  th_free(g1);
  th_free(g2);
  th_free(r1);
  th_free(r2);
  th_images_free(&in);
  th_engine_close(engine);
}

/* ssim_backward with the mean score's dL/dmap must give ssim_compute's gradients. */
static void test_backward_of_mean_is_compute(void **state) {
  const struct th_ctx *ctx = *state;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
    struct ssim_inputs in = {.shape = {.batch = 2, .channels = 3, .height = 45, .width = 38},
                             .dtype = SSIM_DTYPE_U8,
                             .padding = (ssim_padding)padding};
    th_images_make(&rng, &in, 0.1);
    struct th_buffers b;
    th_buffers_alloc(&b, &in, TH_SCORES | TH_GRAD1 | TH_GRAD2);
    int err = ssim_compute(engine, &in, &b.out);
    if (err != 0)
      fail_msg("ssim_compute: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
    size_t map_n = b.map;
    float *grad_map = th_floats_poisoned(map_n);
    for (size_t i = 0; i < map_n; i++)
      grad_map[i] = (float)b.grad_scale;
    float *g1 = th_floats_poisoned(b.grad), *g2 = th_floats_poisoned(b.grad);
    err = ssim_backward(engine, &in, grad_map, g1, g2);
    if (err != 0)
      fail_msg("ssim_backward: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
    double *want = th_doubles(b.grad);
    for (size_t i = 0; i < b.grad; i++)
      want[i] = b.out.grad_img1[i];
    th_check_rel_l2("backward dL/dimg1 vs compute grad_img1", g1, want, b.grad, 1e-5, b.grad_scale);
    for (size_t i = 0; i < b.grad; i++)
      want[i] = b.out.grad_img2[i];
    th_check_rel_l2("backward dL/dimg2 vs compute grad_img2", g2, want, b.grad, 1e-5, b.grad_scale);
    th_free(want);
    th_free(g1);
    th_free(g2);
    th_free(grad_map);
    th_buffers_free(&b);
    th_images_free(&in);
  }
  th_engine_close(engine);
}

#define MAX_CASES 64
static struct engine_fd_case fd_params[MAX_CASES];
static struct backward_case backward_params[MAX_CASES];
static struct th_case cases[MAX_CASES];
static char case_names[MAX_CASES][96];
static size_t case_count;

static void add(const char *name, void (*fn)(void **), const void *param) {
  if (case_count == MAX_CASES)
    abort(); /* the table outgrew MAX_CASES */
  snprintf(case_names[case_count], sizeof(case_names[0]), "%s", name);
  cases[case_count] = (struct th_case){case_names[case_count], fn, param};
  case_count++;
}

static void build_table(void) {
  static const struct {
    ssim_dtype dtype;
    size_t batch, channels, height, width;
  } shapes[] = {{SSIM_DTYPE_U8, 2, 3, 37, 29},
                {SSIM_DTYPE_F32, 1, 1, 64, 64},
                {SSIM_DTYPE_U16, 3, 4, 16, 17}};
  char name[96];
  size_t k = 0;
  for (int t = TARGET_IMG1; t <= TARGET_BOTH; t++) {
    for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
      for (int dtype = SSIM_DTYPE_U8; dtype <= SSIM_DTYPE_F32; dtype += 2, k++) {
        fd_params[k] =
            (struct engine_fd_case){(enum target)t, (ssim_padding)padding, (ssim_dtype)dtype};
        snprintf(name, sizeof(name), "d score / d %s vs finite differences, %s, %s",
                 target_name((enum target)t), th_padding_name((ssim_padding)padding),
                 th_dtype_name((ssim_dtype)dtype));
        add(name, test_engine_fd, &fd_params[k]);
      }
    }
  }
  k = 0;
  for (int t = TARGET_IMG1; t <= TARGET_BOTH; t++) {
    for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
      for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++, k++) {
        backward_params[k] = (struct backward_case){
            (enum target)t,     (ssim_padding)padding, shapes[s].dtype, shapes[s].batch,
            shapes[s].channels, shapes[s].height,      shapes[s].width};
        snprintf(name, sizeof(name), "backward, random dL/dmap, d %s, %s, %zux%zu c%zu b%zu %s",
                 target_name((enum target)t), th_padding_name((ssim_padding)padding),
                 shapes[s].height, shapes[s].width, shapes[s].channels, shapes[s].batch,
                 th_dtype_name(shapes[s].dtype));
        add(name, test_backward, &backward_params[k]);
      }
    }
  }
  /* A 1x1 image: every tap but the centre falls in the padding. */
  backward_params[k] =
      (struct backward_case){TARGET_BOTH, SSIM_PADDING_SAME, SSIM_DTYPE_F32, 2, 3, 1, 1};
  add("backward, random dL/dmap, d both, same, 1x1 c3 b2 f32", test_backward, &backward_params[k]);
  add("backward of the mean score equals compute's gradients", test_backward_of_mean_is_compute,
      NULL);
}

int main(void) {
  int failed = th_run("engine gradients: reference", reference_cases,
                      sizeof(reference_cases) / sizeof(reference_cases[0]), TH_ONCE);
  build_table();
  failed += th_run("engine gradients", cases, case_count, TH_EVERY_BACKEND);
  return failed != 0;
}
