/*
 * test_engine_backends.c: every GPU backend against the CPU backend on the same inputs, from a
 * single pixel to a 4K frame and a batch of 64. The reference is too slow for the largest cases;
 * the CPU backend, itself checked against the reference by test_engine_accuracy, stands in.
 * Where no GPU backend is built or usable, each case skips and says why.
 *
 * A GPU backend may run other kernels when no gradient is asked for (inference) and pick among
 * them by the images' widths, alignment and dtype: the inference cases cover widths that are and
 * are not whole 16-byte rows, maps narrower and wider than one strip of columns, heights that are
 * not multiples of the kernels' row counts, and with and without the map.
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

#define TOL_BACKENDS 1e-4 /* maps and gradients, max absolute */

struct backends_case {
  size_t batch, channels, height, width;
  ssim_dtype dtype;
  ssim_padding padding;
  enum {
    EVERY_OUTPUT,  /* ssim_compute with every output (a training forward and backward) */
    BACKWARD,      /* ssim_backward with a random dL/dmap */
    INFERENCE_MAP, /* ssim_compute with the scores, the channel scores, the map and block means */
    INFERENCE      /* ssim_compute with the scores, the channel scores and block means */
  } mode;
};

static ssim_engine_t *open_pair(const struct th_ctx *ctx, ssim_engine_t **cpu) {
  if (ctx->backend == NULL) {
    th_skip("only the CPU backend is built (or selected by SSIM_TEST_BACKEND): no GPU backend "
            "to compare with it");
  }
  ssim_engine_t *gpu = th_engine_open(ctx->backend, 0);
  *cpu = th_engine_open("cpu", 0);
  return gpu;
}

static void check_call(ssim_engine_t *engine, int err, const char *call) {
  if (err != 0)
    fail_msg("%s on %s: %s (%s)", call, ssim_engine_backend_name(engine), ssim_err_name(err),
             ssim_engine_last_error(engine));
}

/* Gradients: the contract's max absolute difference, and, as an absolute bound says little for
 * large images whose gradient elements are tiny, the relative L2 error against the CPU too. */
static void check_gradients(const char *what, const float *gpu, const float *cpu, size_t n,
                            double scale) {
  th_check_abs_ff(what, gpu, cpu, n, TOL_BACKENDS);
  double *want = th_doubles(n);
  for (size_t i = 0; i < n; i++)
    want[i] = cpu[i];
  th_check_rel_l2(what, gpu, want, n, TH_TOL_GRAD_REL, scale);
  th_free(want);
}

/* The random pair of images of case `c` (noise 0.1), drawn from the case's own generator. */
static struct ssim_inputs case_images(const struct backends_case *c, struct th_rng *rng) {
  struct ssim_inputs in = {
      .shape = {.batch = c->batch, .channels = c->channels, .height = c->height, .width = c->width},
      .dtype = c->dtype,
      .padding = c->padding};
  th_images_make(rng, &in, 0.1);
  return in;
}

static void test_compute(const struct th_ctx *ctx, const struct backends_case *c) {
  static const unsigned outputs[] = {
      [EVERY_OUTPUT] = TH_ALL,
      [INFERENCE_MAP] = TH_SCORES | TH_CHANNELS | TH_MAP | TH_BLOCKS,
      [INFERENCE] = TH_SCORES | TH_CHANNELS | TH_BLOCKS,
  };
  ssim_engine_t *cpu, *gpu = open_pair(ctx, &cpu);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = case_images(c, &rng);
  struct th_buffers g, r;
  th_buffers_alloc(&g, &in, outputs[c->mode]);
  th_buffers_alloc(&r, &in, outputs[c->mode]);
  check_call(gpu, ssim_compute(gpu, &in, &g.out), "ssim_compute");
  check_call(cpu, ssim_compute(cpu, &in, &r.out), "ssim_compute");
  th_check_abs_d("scores", g.out.scores, r.out.scores, g.scores,
                 th_tol_mean(g.channels * g.map_h * g.map_w));
  th_check_abs_d("channel_scores", g.out.channel_scores, r.out.channel_scores, g.channel_scores,
                 th_tol_mean(g.map_h * g.map_w));
  th_check_abs_ff("block_means", g.out.block_means, r.out.block_means, g.block_means, TOL_BACKENDS);
  if (g.out.map != NULL)
    th_check_abs_ff("map", g.out.map, r.out.map, g.map, TOL_BACKENDS);
  if (c->mode == EVERY_OUTPUT) {
    check_gradients("grad_img1", g.out.grad_img1, r.out.grad_img1, g.grad, g.grad_scale);
    check_gradients("grad_img2", g.out.grad_img2, r.out.grad_img2, g.grad, g.grad_scale);
  }
  th_buffers_free(&g);
  th_buffers_free(&r);
  th_images_free(&in);
  th_engine_close(gpu);
  th_engine_close(cpu);
}

static void test_backward(const struct th_ctx *ctx, const struct backends_case *c) {
  ssim_engine_t *cpu, *gpu = open_pair(ctx, &cpu);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = case_images(c, &rng);
  size_t n = th_elements(&in.shape);
  double pixels_per_pair = (double)th_map_pixels_per_pair(&in);
  float *grad_map = th_grad_map_random(&rng, &in, pixels_per_pair);
  float *g1 = th_floats_poisoned(n), *g2 = th_floats_poisoned(n);
  float *r1 = th_floats_poisoned(n), *r2 = th_floats_poisoned(n);
  check_call(gpu, ssim_backward(gpu, &in, grad_map, g1, g2), "ssim_backward");
  check_call(cpu, ssim_backward(cpu, &in, grad_map, r1, r2), "ssim_backward");
  double scale = 1.0 / pixels_per_pair;
  check_gradients("dL/dimg1", g1, r1, n, scale);
  check_gradients("dL/dimg2", g2, r2, n, scale);
  th_free(grad_map);
  th_free(g1);
  th_free(g2);
  th_free(r1);
  th_free(r2);
  th_images_free(&in);
  th_engine_close(gpu);
  th_engine_close(cpu);
}

static void test_case(void **state) {
  const struct th_ctx *ctx = *state;
  const struct backends_case *c = ctx->param;
  if (c->mode == BACKWARD)
    test_backward(ctx, c);
  else
    test_compute(ctx, c);
}

static const struct backends_case params[] = {
    {2, 3, 1, 1, SSIM_DTYPE_U8, SSIM_PADDING_SAME, EVERY_OUTPUT},
    {1, 1, 11, 11, SSIM_DTYPE_F32, SSIM_PADDING_VALID, EVERY_OUTPUT},
    {2, 3, 11, 11, SSIM_DTYPE_U16, SSIM_PADDING_SAME, EVERY_OUTPUT},
    {3, 3, 37, 53, SSIM_DTYPE_U8, SSIM_PADDING_SAME, EVERY_OUTPUT},
    {1, 1, 53, 37, SSIM_DTYPE_F32, SSIM_PADDING_VALID, EVERY_OUTPUT},
    {1, 2, 1, 301, SSIM_DTYPE_U8, SSIM_PADDING_SAME, EVERY_OUTPUT},
    {2, 4, 257, 129, SSIM_DTYPE_U16, SSIM_PADDING_VALID, EVERY_OUTPUT},
    {1, 3, 1080, 1920, SSIM_DTYPE_F32, SSIM_PADDING_VALID, EVERY_OUTPUT},
    {1, 3, 2160, 3840, SSIM_DTYPE_U8, SSIM_PADDING_SAME, EVERY_OUTPUT},
    {64, 3, 32, 48, SSIM_DTYPE_U8, SSIM_PADDING_SAME, EVERY_OUTPUT},
    {64, 1, 16, 16, SSIM_DTYPE_F32, SSIM_PADDING_VALID, EVERY_OUTPUT},
    {2, 3, 61, 47, SSIM_DTYPE_F32, SSIM_PADDING_SAME, BACKWARD},
    {2, 3, 61, 47, SSIM_DTYPE_U8, SSIM_PADDING_VALID, BACKWARD},
    {1, 1, 1, 1, SSIM_DTYPE_F32, SSIM_PADDING_SAME, BACKWARD},
    /* Inference: 16-byte rows (4, 8 or 16 pixels) and not, one strip and several. */
    {1, 3, 1080, 1920, SSIM_DTYPE_F32, SSIM_PADDING_SAME, INFERENCE_MAP},
    {8, 3, 1080, 1920, SSIM_DTYPE_F32, SSIM_PADDING_SAME, INFERENCE},
    {1, 3, 2160, 3840, SSIM_DTYPE_U8, SSIM_PADDING_VALID, INFERENCE},
    {2, 3, 257, 1000, SSIM_DTYPE_F32, SSIM_PADDING_VALID, INFERENCE_MAP},
    {3, 1, 100, 208, SSIM_DTYPE_U8, SSIM_PADDING_SAME, INFERENCE_MAP},
    {3, 1, 100, 200, SSIM_DTYPE_U8, SSIM_PADDING_SAME, INFERENCE_MAP},
    {2, 2, 45, 72, SSIM_DTYPE_U16, SSIM_PADDING_VALID, INFERENCE_MAP},
    {2, 2, 45, 71, SSIM_DTYPE_U16, SSIM_PADDING_SAME, INFERENCE},
    {5, 1, 33, 16, SSIM_DTYPE_F32, SSIM_PADDING_SAME, INFERENCE_MAP},
    {1, 1, 11, 16, SSIM_DTYPE_F32, SSIM_PADDING_VALID, INFERENCE_MAP},
    {1, 1, 3001, 64, SSIM_DTYPE_U8, SSIM_PADDING_SAME, INFERENCE},
    {64, 3, 256, 256, SSIM_DTYPE_F32, SSIM_PADDING_SAME, INFERENCE},
};

#define CASE_COUNT (sizeof(params) / sizeof(params[0]))
static struct th_case cases[CASE_COUNT];
static char case_names[CASE_COUNT][96];

int main(void) {
  static const char *const case_modes[] = {"compute", "backward", "inference+map", "inference"};
  for (size_t i = 0; i < CASE_COUNT; i++) {
    const struct backends_case *c = &params[i];
    snprintf(case_names[i], sizeof(case_names[0]), "vs cpu: %s %zux%zu c%zu b%zu %s %s",
             case_modes[c->mode], c->height, c->width, c->channels, c->batch,
             th_dtype_name(c->dtype), th_padding_name(c->padding));
    cases[i] = (struct th_case){case_names[i], test_case, c};
  }
  int failed = th_run("engine backends", cases, CASE_COUNT, TH_GPU_BACKENDS);
  return th_exit_status(failed, CASE_COUNT);
}
