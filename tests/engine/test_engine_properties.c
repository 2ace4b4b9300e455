/*
 * test_engine_properties.c: what must hold whatever the numbers: identical images score 1 with
 * zero gradient, swapping the images swaps the gradients, constant, black, thin and out-of-range
 * images agree with the reference, a batch computes each pair as if alone, and neither an
 * engine's earlier calls nor the thread count change anything, to the bit.
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

static void compute_or_fail(ssim_engine_t *engine, const struct ssim_inputs *in,
                            const struct ssim_outputs *out) {
  int err = ssim_compute(engine, in, out);
  if (err != 0)
    fail_msg("ssim_compute: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
}

static double max_abs_f(const float *v, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)v[i]));
  return m;
}

/* An image pair of one value each (in [0, 1] units), stored in `dtype`. */
static void make_constant(struct ssim_inputs *in, double v1, double v2) {
  size_t n = th_elements(&in->shape), bytes = n * th_dtype_size(in->dtype);
  void *img1 = th_alloc(bytes), *img2 = th_alloc(bytes);
  for (size_t i = 0; i < n; i++) {
    th_image_set(in->dtype, img1, i, v1);
    th_image_set(in->dtype, img2, i, v2);
  }
  in->img1 = img1;
  in->img2 = img2;
}

/* ---- Identical images -------------------------------------------------------------------- */

/* Identical images score exactly 1 (to float rounding) and sit at a maximum: zero gradient.
 * A gradient element is of the order of 1 / (channels * map pixels); "zero" is far below. */
static void check_identical(ssim_engine_t *engine, struct ssim_inputs *in) {
  struct th_buffers b;
  th_buffers_alloc(&b, in, TH_ALL);
  compute_or_fail(engine, in, &b.out);
  for (size_t i = 0; i < b.scores; i++)
    if (!(fabs(b.out.scores[i] - 1.0) <= 1e-6))
      fail_msg("identical images: score[%zu] = %.9f, not 1", i, b.out.scores[i]);
  for (size_t i = 0; i < b.channel_scores; i++)
    if (!(fabs(b.out.channel_scores[i] - 1.0) <= 1e-6))
      fail_msg("identical images: channel_scores[%zu] = %.9f", i, b.out.channel_scores[i]);
  th_check_written_f("map", b.out.map, b.map);
  th_check_written_f("block_means", b.out.block_means, b.block_means);
  double g1 = max_abs_f(b.out.grad_img1, b.grad), g2 = max_abs_f(b.out.grad_img2, b.grad);
  th_check_written_f("grad_img1", b.out.grad_img1, b.grad);
  th_check_written_f("grad_img2", b.out.grad_img2, b.grad);
  if (!(g1 <= 1e-3 * b.grad_scale && g2 <= 1e-3 * b.grad_scale))
    fail_msg("identical images: max |grad_img1| %.3g, |grad_img2| %.3g, not ~0 (a typical "
             "gradient element is %.3g)",
             g1, g2, b.grad_scale);
  th_buffers_free(&b);
}

static void test_identical(void **state) {
  const struct th_ctx *ctx = *state;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  for (int dtype = SSIM_DTYPE_U8; dtype <= SSIM_DTYPE_F32; dtype++) {
    for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
      struct ssim_inputs in = {.shape = {.batch = 2, .channels = 3, .height = 53, .width = 41},
                               .dtype = (ssim_dtype)dtype,
                               .padding = (ssim_padding)padding};
      th_images_make(&rng, &in, 0.0); /* no noise: img2 == img1 */
      check_identical(engine, &in);
      /* The very same buffer for both images is allowed too. */
      const void *img2 = in.img2;
      in.img2 = in.img1;
      check_identical(engine, &in);
      in.img2 = img2;
      th_images_free(&in);
    }
  }
  th_engine_close(engine);
}

/* All black: every statistic is 0, so SSIM = C1 C2 / (C1 C2) = 1, and every gradient term
 * carries a factor mu or x that is 0. */
static void test_black(void **state) {
  const struct th_ctx *ctx = *state;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
    struct ssim_inputs in = {.shape = {.batch = 1, .channels = 3, .height = 40, .width = 33},
                             .dtype = SSIM_DTYPE_U8,
                             .padding = (ssim_padding)padding};
    make_constant(&in, 0.0, 0.0);
    struct th_buffers b;
    th_buffers_alloc(&b, &in, TH_ALL);
    compute_or_fail(engine, &in, &b.out);
    th_buffers_reference(&b, &in);
    th_buffers_check(&b);
    assert_true(fabs(b.out.scores[0] - 1.0) <= 1e-6);
    for (size_t i = 0; i < b.map; i++)
      assert_true(fabs(b.out.map[i] - 1.0f) <= 1e-6f);
    assert_true(max_abs_f(b.out.grad_img1, b.grad) == 0.0);
    assert_true(max_abs_f(b.out.grad_img2, b.grad) == 0.0);
    th_buffers_free(&b);
    th_images_free(&in);
  }
  th_engine_close(engine);
}

/* ---- Swapping the images ----------------------------------------------------------------- */

static void test_swap(void **state) {
  const struct th_ctx *ctx = *state;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
    struct ssim_inputs in = {.shape = {.batch = 2, .channels = 3, .height = 47, .width = 61},
                             .dtype = SSIM_DTYPE_F32,
                             .padding = (ssim_padding)padding};
    th_images_make(&rng, &in, 0.15);
    struct ssim_inputs swapped = in;
    swapped.img1 = in.img2;
    swapped.img2 = in.img1;
    struct th_buffers a, b;
    th_buffers_alloc(&a, &in, TH_ALL);
    th_buffers_alloc(&b, &in, TH_ALL);
    compute_or_fail(engine, &in, &a.out);
    compute_or_fail(engine, &swapped, &b.out);
    /* SSIM is symmetric in exact arithmetic; float evaluation order may differ by rounding. */
    th_check_abs_d("score(y, x) vs score(x, y)", b.out.scores, a.out.scores, a.scores, 1e-7);
    th_check_abs_ff("map(y, x) vs map(x, y)", b.out.map, a.out.map, a.map, 1e-6);
    double tol = 1e-4 * max_abs_f(a.out.grad_img1, a.grad);
    th_check_abs_ff("grad_img1(y, x) vs grad_img2(x, y)", b.out.grad_img1, a.out.grad_img2, a.grad,
                    tol);
    th_check_abs_ff("grad_img2(y, x) vs grad_img1(x, y)", b.out.grad_img2, a.out.grad_img1, a.grad,
                    tol);
    th_buffers_free(&a);
    th_buffers_free(&b);
    th_images_free(&in);
  }
  th_engine_close(engine);
}

/* ---- Special images against the reference ------------------------------------------------ */

struct special_case {
  size_t batch, channels, height, width;
  ssim_dtype dtype;
  ssim_padding padding;
  double v1, v2; /* constant images of these values; v1 < 0: random textured images */
  double range;  /* f32 only, > 0: stretch the images to [-range, 1 + range] */
};

static void test_special(void **state) {
  const struct th_ctx *ctx = *state;
  const struct special_case *c = ctx->param;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = {
      .shape = {.batch = c->batch, .channels = c->channels, .height = c->height, .width = c->width},
      .dtype = c->dtype,
      .padding = c->padding};
  if (c->v1 >= 0.0)
    make_constant(&in, c->v1, c->v2);
  else
    th_images_make(&rng, &in, 0.1);
  if (c->range > 0.0) {
    /* ssim.h: float input is used as is, not clamped to [0, 1]. */
    size_t n = th_elements(&in.shape);
    for (size_t i = 0; i < n; i++) {
      ((float *)in.img1)[i] =
          (float)(((const float *)in.img1)[i] * (1.0 + 2.0 * c->range) - c->range);
      ((float *)in.img2)[i] =
          (float)(((const float *)in.img2)[i] * (1.0 + 2.0 * c->range) - c->range);
    }
  }
  struct th_buffers b;
  th_buffers_alloc(&b, &in, TH_ALL);
  compute_or_fail(engine, &in, &b.out);
  th_buffers_reference(&b, &in);
  th_buffers_check(&b);
  th_buffers_free(&b);
  th_images_free(&in);
  th_engine_close(engine);
}

static const struct special_case special_params[] = {
    /* Constant images: zero variance everywhere but at the zero-padded edges. */
    {1, 3, 37, 45, SSIM_DTYPE_U8, SSIM_PADDING_SAME, 0.5, 0.5, 0},
    {1, 3, 37, 45, SSIM_DTYPE_F32, SSIM_PADDING_VALID, 0.3, 0.6, 0},
    {2, 1, 20, 20, SSIM_DTYPE_U16, SSIM_PADDING_SAME, 0.0, 1.0, 0},
    {1, 1, 25, 30, SSIM_DTYPE_U8, SSIM_PADDING_VALID, 1.0, 1.0, 0},
    /* One pixel wide, tall and both. */
    {2, 3, 1, 300, SSIM_DTYPE_U8, SSIM_PADDING_SAME, -1, 0, 0},
    {2, 3, 300, 1, SSIM_DTYPE_F32, SSIM_PADDING_SAME, -1, 0, 0},
    {1, 1, 1, 37, SSIM_DTYPE_U16, SSIM_PADDING_SAME, -1, 0, 0},
    {1, 4, 37, 1, SSIM_DTYPE_U8, SSIM_PADDING_SAME, -1, 0, 0},
    {3, 1, 1, 1, SSIM_DTYPE_F32, SSIM_PADDING_SAME, -1, 0, 0},
    {1, 2, 2, 300, SSIM_DTYPE_F32, SSIM_PADDING_SAME, -1, 0, 0},
    /* The smallest valid images, and valid on a thin strip. */
    {1, 1, 11, 200, SSIM_DTYPE_U8, SSIM_PADDING_VALID, -1, 0, 0},
    {1, 1, 200, 11, SSIM_DTYPE_U8, SSIM_PADDING_VALID, -1, 0, 0},
    /* Float input outside [0, 1] is used as is. */
    {2, 3, 33, 34, SSIM_DTYPE_F32, SSIM_PADDING_SAME, -1, 0, 0.2},
};

/* ---- A batch is its pairs computed one by one -------------------------------------------- */

/* Pair n of a batch, as a batch of its own. */
static struct ssim_inputs pair_of(const struct ssim_inputs *in, size_t n) {
  const size_t pair_bytes =
      in->shape.channels * in->shape.height * in->shape.width * th_dtype_size(in->dtype);
  struct ssim_inputs one = *in;
  one.shape.batch = 1;
  one.img1 = (const char *)in->img1 + n * pair_bytes;
  one.img2 = (const char *)in->img2 + n * pair_bytes;
  return one;
}

/* The scores of pair n of a batch (`all`) and of that pair alone (`one`) are the same bits: each
 * backend sums a plane the same way whatever else is in the call (the CUDA backend's sums are
 * integers, see engine/cuda/scores.cuh). */
static void check_same_scores(const struct th_buffers *one, const struct th_buffers *all,
                              size_t n) {
  th_check_same_bits("score", one->out.scores, all->out.scores + n, sizeof(double));
  th_check_same_bits("channel_scores", one->out.channel_scores,
                     all->out.channel_scores + n * one->channel_scores,
                     one->channel_scores * sizeof(double));
}

/* Every output; those other than the scores within float rounding. */
static void test_batch_is_pairs(void **state) {
  const struct th_ctx *ctx = *state;
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = {.shape = {.batch = 5, .channels = 3, .height = 70, .width = 45},
                           .dtype = SSIM_DTYPE_U16,
                           .padding = SSIM_PADDING_SAME};
  th_images_make(&rng, &in, 0.1);
  struct th_buffers all;
  th_buffers_alloc(&all, &in, TH_ALL);
  compute_or_fail(engine, &in, &all.out);
  for (size_t n = 0; n < in.shape.batch; n++) {
    const struct ssim_inputs one = pair_of(&in, n);
    struct th_buffers b;
    th_buffers_alloc(&b, &one, TH_ALL);
    compute_or_fail(engine, &one, &b.out);
    check_same_scores(&b, &all, n);
    th_check_abs_ff("map", b.out.map, all.out.map + n * b.map, b.map, 1e-6);
    th_check_abs_ff("block_means", b.out.block_means, all.out.block_means + n * b.block_means,
                    b.block_means, 1e-6);
    double tol = 1e-5 * max_abs_f(b.out.grad_img1, b.grad);
    th_check_abs_ff("grad_img1", b.out.grad_img1, all.out.grad_img1 + n * b.grad, b.grad, tol);
    th_check_abs_ff("grad_img2", b.out.grad_img2, all.out.grad_img2 + n * b.grad, b.grad, tol);
    th_buffers_free(&b);
  }
  th_buffers_free(&all);
  th_images_free(&in);
  th_engine_close(engine);
}

/* Scores only, bit for bit, of batches and of some of their pairs alone. On the CUDA backend:
 * 300 pairs of odd width, which it computes in chunks on two streams; rows of whole 16-byte
 * chunks (the TMA kernel on sm_90 and later), whose blocks' shares of rows end anywhere in a
 * strip, at other rows in a batch than in a pair alone. */
static void test_batch_is_pairs_scores(void **state) {
  const struct th_ctx *ctx = *state;
  static const struct {
    struct ssim_shape shape;
    ssim_dtype dtype;
    size_t picks[3];
  } cases[] = {
      {{300, 2, 23, 29}, SSIM_DTYPE_F32, {0, 137, 299}},
      {{7, 3, 150, 200}, SSIM_DTYPE_F32, {0, 3, 6}},
      {{9, 1, 97, 64}, SSIM_DTYPE_U8, {0, 4, 8}},
      {{5, 2, 301, 24}, SSIM_DTYPE_U16, {0, 2, 4}},
  };
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    struct ssim_inputs in = {
        .shape = cases[k].shape, .dtype = cases[k].dtype, .padding = SSIM_PADDING_SAME};
    th_images_make(&rng, &in, 0.1);
    struct th_buffers all;
    th_buffers_alloc(&all, &in, TH_SCORES | TH_CHANNELS);
    compute_or_fail(engine, &in, &all.out);
    for (size_t i = 0; i < 3; i++) {
      const struct ssim_inputs one = pair_of(&in, cases[k].picks[i]);
      struct th_buffers b;
      th_buffers_alloc(&b, &one, TH_SCORES | TH_CHANNELS);
      compute_or_fail(engine, &one, &b.out);
      check_same_scores(&b, &all, cases[k].picks[i]);
      th_buffers_free(&b);
    }
    th_buffers_free(&all);
    th_images_free(&in);
  }
  th_engine_close(engine);
}

/* ---- Earlier calls change nothing --------------------------------------------------------- */

/* Outputs that were asked for: written (poisoned buffers would compare equal) and equal. */
static void same_if_asked_d(const char *what, const double *got, const double *want, size_t n) {
  if (got == NULL)
    return;
  th_check_written_d(what, got, n);
  th_check_same_bits(what, got, want, n * sizeof(double));
}

static void same_if_asked_f(const char *what, const float *got, const float *want, size_t n) {
  if (got == NULL)
    return;
  th_check_written_f(what, got, n);
  th_check_same_bits(what, got, want, n * sizeof(float));
}

/* One engine runs calls of different batches, channel counts and outputs one after the other
 * (buffers and scratch grow, shrink in use, and are reused); each call must give the bits a fresh
 * engine gives for it. */
static void test_history(void **state) {
  const struct th_ctx *ctx = *state;
  static const struct {
    size_t batch, channels;
    unsigned outputs;
  } calls[] = {
      {1, 3, TH_SCORES | TH_CHANNELS | TH_BLOCKS},
      {8, 3, TH_SCORES},
      {2, 4, TH_ALL},
      {5, 1, TH_SCORES | TH_CHANNELS | TH_MAP},
      {8, 3, TH_SCORES | TH_CHANNELS | TH_BLOCKS},
      {1, 3, TH_SCORES},
  };
  ssim_engine_t *engine = th_engine_open(ctx->backend, 0);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
    struct ssim_inputs in = {.shape = {.batch = calls[i].batch,
                                       .channels = calls[i].channels,
                                       .height = 40,
                                       .width = 64},
                             .dtype = i % 2 ? SSIM_DTYPE_F32 : SSIM_DTYPE_U8,
                             .padding = SSIM_PADDING_SAME};
    th_images_make(&rng, &in, 0.1);
    struct th_buffers used, fresh;
    th_buffers_alloc(&used, &in, calls[i].outputs);
    th_buffers_alloc(&fresh, &in, calls[i].outputs);
    compute_or_fail(engine, &in, &used.out);
    ssim_engine_t *other = th_engine_open(ctx->backend, 0);
    compute_or_fail(other, &in, &fresh.out);
    th_engine_close(other);
    print_message("call %zu: batch %zu, %zu channels\n", i, calls[i].batch, calls[i].channels);
    same_if_asked_d("scores", used.out.scores, fresh.out.scores, used.scores);
    same_if_asked_d("channel_scores", used.out.channel_scores, fresh.out.channel_scores,
                    used.channel_scores);
    same_if_asked_f("map", used.out.map, fresh.out.map, used.map);
    same_if_asked_f("block_means", used.out.block_means, fresh.out.block_means, used.block_means);
    same_if_asked_f("grad_img1", used.out.grad_img1, fresh.out.grad_img1, used.grad);
    th_buffers_free(&used);
    th_buffers_free(&fresh);
    th_images_free(&in);
  }
  th_engine_close(engine);
}

/* ---- The thread count changes nothing ---------------------------------------------------- */

struct threads_case {
  size_t batch, channels, height, width;
  ssim_dtype dtype;
  ssim_padding padding;
};

/* Every output of ssim_compute and ssim_backward from one engine, for comparison. */
struct run {
  struct th_buffers b;
  float *back1, *back2;
};

static void run_all(ssim_engine_t *engine, const struct ssim_inputs *in, const float *grad_map,
                    struct run *r) {
  th_buffers_alloc(&r->b, in, TH_ALL);
  compute_or_fail(engine, in, &r->b.out);
  r->back1 = th_floats_poisoned(r->b.grad);
  r->back2 = th_floats_poisoned(r->b.grad);
  int err = ssim_backward(engine, in, grad_map, r->back1, r->back2);
  if (err != 0)
    fail_msg("ssim_backward: %s (%s)", ssim_err_name(err), ssim_engine_last_error(engine));
}

static void run_free(struct run *r) {
  th_buffers_free(&r->b);
  th_free(r->back1);
  th_free(r->back2);
}

static void test_threads(void **state) {
  const struct th_ctx *ctx = *state;
  const struct threads_case *c = ctx->param;
  static const int thread_counts[] = {1, 2, 3, 7};
  ssim_engine_t *engines[4];
  for (int t = 0; t < 4; t++)
    engines[t] = th_engine_open(ctx->backend, thread_counts[t]);
  struct th_rng rng;
  th_rng_init(&rng, ctx->case_name);
  struct ssim_inputs in = {
      .shape = {.batch = c->batch, .channels = c->channels, .height = c->height, .width = c->width},
      .dtype = c->dtype,
      .padding = c->padding};
  th_images_make(&rng, &in, 0.1);
  size_t mh, mw;
  ref_map_size(c->height, c->width, c->padding, &mh, &mw);
  size_t map_n = c->batch * c->channels * mh * mw;
  float *grad_map = th_floats_poisoned(map_n);
  for (size_t i = 0; i < map_n; i++)
    grad_map[i] = (float)th_rng_normal(&rng);
  struct run first;
  run_all(engines[0], &in, grad_map, &first);
  for (int t = 1; t < 4; t++) {
    struct run other;
    run_all(engines[t], &in, grad_map, &other);
    print_message("threads %d vs 1: comparing bits\n", thread_counts[t]);
    const struct th_buffers *a = &first.b, *b = &other.b;
    th_check_same_bits("scores", b->out.scores, a->out.scores, a->scores * sizeof(double));
    th_check_same_bits("channel_scores", b->out.channel_scores, a->out.channel_scores,
                       a->channel_scores * sizeof(double));
    th_check_same_bits("map", b->out.map, a->out.map, a->map * sizeof(float));
    th_check_same_bits("block_means", b->out.block_means, a->out.block_means,
                       a->block_means * sizeof(float));
    th_check_same_bits("grad_img1", b->out.grad_img1, a->out.grad_img1, a->grad * sizeof(float));
    th_check_same_bits("grad_img2", b->out.grad_img2, a->out.grad_img2, a->grad * sizeof(float));
    th_check_same_bits("backward dL/dimg1", other.back1, first.back1, a->grad * sizeof(float));
    th_check_same_bits("backward dL/dimg2", other.back2, first.back2, a->grad * sizeof(float));
    run_free(&other);
  }
  run_free(&first);
  th_free(grad_map);
  th_images_free(&in);
  for (int t = 0; t < 4; t++)
    th_engine_close(engines[t]);
}

static const struct threads_case threads_params[] = {
    {3, 3, 131, 97, SSIM_DTYPE_U16, SSIM_PADDING_SAME},
    {1, 1, 23, 400, SSIM_DTYPE_F32, SSIM_PADDING_VALID},
    {5, 1, 1, 1, SSIM_DTYPE_U8, SSIM_PADDING_SAME},
    {1, 3, 540, 960, SSIM_DTYPE_U8, SSIM_PADDING_SAME},
};

#define MAX_CASES 64
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
  char name[96];
  add("identical images score 1 with zero gradient", test_identical, NULL);
  add("black images score 1 with zero gradient", test_black, NULL);
  add("swapping the images swaps the gradients", test_swap, NULL);
  add("a batch is its pairs computed alone", test_batch_is_pairs, NULL);
  add("batches are their pairs computed alone (scores)", test_batch_is_pairs_scores, NULL);
  add("earlier calls of other shapes change nothing", test_history, NULL);
  for (size_t i = 0; i < sizeof(special_params) / sizeof(special_params[0]); i++) {
    const struct special_case *c = &special_params[i];
    const char *kind = c->range > 0 ? "f32 outside [0, 1]" : c->v1 >= 0 ? "constant" : "random";
    snprintf(name, sizeof(name), "%s %zux%zu c%zu b%zu %s %s", kind, c->height, c->width,
             c->channels, c->batch, th_dtype_name(c->dtype), th_padding_name(c->padding));
    if (c->v1 >= 0)
      snprintf(name + strlen(name), sizeof(name) - strlen(name), " (%.1f vs %.1f)", c->v1, c->v2);
    add(name, test_special, c);
  }
  for (size_t i = 0; i < sizeof(threads_params) / sizeof(threads_params[0]); i++) {
    const struct threads_case *c = &threads_params[i];
    snprintf(name, sizeof(name), "threads 1, 2, 3, 7 give the same bits, %zux%zu c%zu b%zu %s %s",
             c->height, c->width, c->channels, c->batch, th_dtype_name(c->dtype),
             th_padding_name(c->padding));
    add(name, test_threads, c);
  }
}

int main(void) {
  build_table();
  return th_run("engine properties", cases, case_count, TH_EVERY_BACKEND) != 0;
}
