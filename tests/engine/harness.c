/*
 * harness.c: shared machinery of the engine tests (see harness.h).
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ---- Random numbers ---------------------------------------------------------------------- */

/* splitmix64: small, fast, and good enough to make test images from. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t th_seed(void) {
  static int chosen;
  static uint64_t seed;
  if (!chosen) {
    const char *env = getenv("SSIM_TEST_SEED");
    if (env != NULL && env[0] != '\0') {
      seed = strtoull(env, NULL, 0);
    } else {
      struct timespec now;
      timespec_get(&now, TIME_UTC);
      uint64_t mix = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
      seed = splitmix64(&mix);
    }
    chosen = 1;
  }
  return seed;
}

void th_rng_init(struct th_rng *rng, const char *case_name) {
  uint64_t hash = 0xcbf29ce484222325ull; /* FNV-1a */
  for (const char *c = case_name; *c != '\0'; c++)
    hash = (hash ^ (unsigned char)*c) * 0x100000001b3ull;
  rng->state = th_seed() ^ hash;
}

double th_rng_uniform(struct th_rng *rng) {
  return (double)(splitmix64(&rng->state) >> 11) * 0x1.0p-53;
}

double th_rng_normal(struct th_rng *rng) {
  /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
  double u = 1.0 - th_rng_uniform(rng), v = th_rng_uniform(rng);
  return sqrt(-2.0 * log(u)) * cos(2.0 * 3.14159265358979323846 * v);
}

/* ---- Memory that a failing test does not leak ------------------------------------------- */

/* What the running test holds. Tests run one at a time, so one list serves them all. */
#define TH_MAX_HELD 1024
static struct held {
  void *p;
  int is_engine;
} held[TH_MAX_HELD];
static size_t held_count;

static void hold(void *p, int is_engine) {
  if (held_count == TH_MAX_HELD)
    fail_msg("a test holds more than %d buffers and engines", TH_MAX_HELD);
  held[held_count++] = (struct held){p, is_engine};
}

/* Forgets p; returns whether it was held. */
static int release(void *p) {
  for (size_t i = held_count; i-- > 0;) {
    if (held[i].p == p) {
      held[i] = held[--held_count];
      return 1;
    }
  }
  return 0;
}

void *th_alloc(size_t bytes) {
  void *p = malloc(bytes > 0 ? bytes : 1);
  if (p == NULL)
    fail_msg("out of memory allocating %zu bytes", bytes);
  hold(p, 0);
  return p;
}

void th_free(void *p) {
  if (p == NULL)
    return;
  if (!release(p))
    fail_msg("th_free of a pointer th_alloc did not return");
  free(p);
}

static size_t skipped_count;

void th_skip(const char *why) {
  print_message("skipped: %s\n", why);
  skipped_count++;
  skip();
}

size_t th_skipped(void) {
  return skipped_count;
}

int th_exit_status(int failed, size_t total) {
  if (failed != 0)
    return 1;
  return total > 0 && skipped_count == total ? TH_EXIT_SKIPPED : 0;
}

void th_engine_close(ssim_engine_t *engine) {
  if (engine == NULL)
    return;
  if (!release(engine))
    fail_msg("th_engine_close of an engine th_engine_open did not return");
  ssim_engine_destroy(engine);
}

/* cmocka runs this after every test, also after a failure. */
static int release_all(void **state) {
  (void)state;
  while (held_count > 0) {
    struct held h = held[--held_count];
    if (h.is_engine)
      ssim_engine_destroy(h.p);
    else
      free(h.p);
  }
  return 0;
}

/* ---- Images ------------------------------------------------------------------------------ */

size_t th_dtype_size(ssim_dtype dtype) {
  return dtype == SSIM_DTYPE_U8 ? 1 : dtype == SSIM_DTYPE_U16 ? 2 : 4;
}

const char *th_dtype_name(ssim_dtype dtype) {
  return dtype == SSIM_DTYPE_U8 ? "u8" : dtype == SSIM_DTYPE_U16 ? "u16" : "f32";
}

const char *th_padding_name(ssim_padding padding) {
  return padding == SSIM_PADDING_SAME ? "same" : "valid";
}

size_t th_elements(const struct ssim_shape *shape) {
  return shape->batch * shape->channels * shape->height * shape->width;
}

static double clamp01(double v) {
  return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

void th_image_set(ssim_dtype dtype, void *img, size_t i, double v) {
  switch (dtype) {
  case SSIM_DTYPE_U8:
    ((uint8_t *)img)[i] = (uint8_t)lround(clamp01(v) * 255.0);
    break;
  case SSIM_DTYPE_U16:
    ((uint16_t *)img)[i] = (uint16_t)lround(clamp01(v) * 65535.0);
    break;
  case SSIM_DTYPE_F32:
    ((float *)img)[i] = (float)v;
    break;
  }
}

void th_images_make(struct th_rng *rng, struct ssim_inputs *in, double noise) {
  const struct ssim_shape *s = &in->shape;
  size_t n = th_elements(s), bytes = n * th_dtype_size(in->dtype);
  void *img1 = th_alloc(bytes), *img2 = th_alloc(bytes);
  for (size_t p = 0; p < s->batch * s->channels; p++) {
    /* A few waves of random direction and wavelength make smooth and busy regions; fine
     * uniform detail on top keeps the local variance realistic rather than zero. */
    double fy[3], fx[3], phase[3], amp[3];
    for (int k = 0; k < 3; k++) {
      fy[k] = (th_rng_uniform(rng) - 0.5) * 0.6;
      fx[k] = (th_rng_uniform(rng) - 0.5) * 0.6;
      phase[k] = th_rng_uniform(rng) * 6.283185307179586;
      amp[k] = 0.1 + 0.1 * th_rng_uniform(rng);
    }
    double base = 0.3 + 0.4 * th_rng_uniform(rng);
    for (size_t r = 0; r < s->height; r++) {
      for (size_t c = 0; c < s->width; c++) {
        double v = base + 0.15 * (th_rng_uniform(rng) - 0.5);
        for (int k = 0; k < 3; k++)
          v += amp[k] * sin(fy[k] * (double)r + fx[k] * (double)c + phase[k]);
        v = clamp01(v);
        size_t i = (p * s->height + r) * s->width + c;
        th_image_set(in->dtype, img1, i, v);
        th_image_set(in->dtype, img2, i, clamp01(v + noise * th_rng_normal(rng)));
      }
    }
  }
  in->img1 = img1;
  in->img2 = img2;
}

void th_images_free(struct ssim_inputs *in) {
  th_free((void *)in->img1);
  th_free((void *)in->img2);
  in->img1 = NULL;
  in->img2 = NULL;
}

/* ---- Backends and engines ---------------------------------------------------------------- */

ssim_engine_t *th_engine_open(const char *backend, int threads) {
  struct ssim_engine_options opts;
  ssim_engine_options_init(&opts);
  opts.backend = backend;
  opts.threads = threads;
  char detail[512] = "";
  ssim_engine_t *engine = NULL;
  int err = ssim_engine_create(&opts, &engine, detail, sizeof(detail));
  if (err == SSIM_ENOBACKEND) {
    char why[640];
    snprintf(why, sizeof(why), "backend \"%s\" is built but unusable here: %s", backend, detail);
    th_skip(why);
  }
  if (err != 0)
    fail_msg("ssim_engine_create(\"%s\", threads %d): %s (%s)", backend, threads,
             ssim_err_name(err), detail);
  hold(engine, 1);
  assert_string_equal(ssim_engine_backend_name(engine), backend);
  return engine;
}

/* ---- Output buffers ---------------------------------------------------------------------- */

float *th_floats_poisoned(size_t n) {
  float *p = th_alloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    p[i] = NAN;
  return p;
}

size_t th_map_pixels_per_pair(const struct ssim_inputs *in) {
  size_t map_h, map_w;
  ref_map_size(in->shape.height, in->shape.width, in->padding, &map_h, &map_w);
  return in->shape.channels * map_h * map_w;
}

float *th_grad_map_random(struct th_rng *rng, const struct ssim_inputs *in, double divisor) {
  size_t count = in->shape.batch * th_map_pixels_per_pair(in);
  float *grad_map = th_floats_poisoned(count);
  for (size_t i = 0; i < count; i++)
    grad_map[i] = (float)(th_rng_normal(rng) / divisor);
  return grad_map;
}

double *th_doubles_poisoned(size_t n) {
  double *p = th_doubles(n);
  for (size_t i = 0; i < n; i++)
    p[i] = NAN;
  return p;
}

double *th_doubles(size_t n) {
  return th_alloc(n * sizeof(double));
}

void th_buffers_alloc(struct th_buffers *b, const struct ssim_inputs *in, unsigned what) {
  const struct ssim_shape *s = &in->shape;
  size_t mh, mw;
  ref_map_size(s->height, s->width, in->padding, &mh, &mw);
  memset(b, 0, sizeof(*b));
  b->scores = s->batch;
  b->channel_scores = s->batch * s->channels;
  b->map = s->batch * s->channels * mh * mw;
  b->block_means =
      s->batch * ((mh + SSIM_BLOCK - 1) / SSIM_BLOCK) * ((mw + SSIM_BLOCK - 1) / SSIM_BLOCK);
  b->grad = th_elements(s);
  b->grad_scale = 1.0 / ((double)s->channels * (double)mh * (double)mw);
  b->channels = s->channels;
  b->map_h = mh;
  b->map_w = mw;
  b->out.scores = th_doubles_poisoned(b->scores);
  b->ref.scores = th_doubles(b->scores);
  if (what & TH_CHANNELS) {
    b->out.channel_scores = th_doubles_poisoned(b->channel_scores);
    b->ref.channel_scores = th_doubles(b->channel_scores);
  }
  if (what & TH_MAP) {
    b->out.map = th_floats_poisoned(b->map);
    b->ref.map = th_doubles(b->map);
  }
  if (what & TH_BLOCKS) {
    b->out.block_means = th_floats_poisoned(b->block_means);
    b->ref.block_means = th_doubles(b->block_means);
  }
  if (what & TH_GRAD1) {
    b->out.grad_img1 = th_floats_poisoned(b->grad);
    b->ref.grad_img1 = th_doubles(b->grad);
  }
  if (what & TH_GRAD2) {
    b->out.grad_img2 = th_floats_poisoned(b->grad);
    b->ref.grad_img2 = th_doubles(b->grad);
  }
}

void th_buffers_free(struct th_buffers *b) {
  th_free(b->out.scores);
  th_free(b->out.channel_scores);
  th_free(b->out.map);
  th_free(b->out.block_means);
  th_free(b->out.grad_img1);
  th_free(b->out.grad_img2);
  th_free(b->ref.scores);
  th_free(b->ref.channel_scores);
  th_free(b->ref.map);
  th_free(b->ref.block_means);
  th_free(b->ref.grad_img1);
  th_free(b->ref.grad_img2);
  memset(b, 0, sizeof(*b));
}

void th_buffers_reference(struct th_buffers *b, const struct ssim_inputs *in) {
  ref_compute(in, &b->ref);
}

/* ---- Comparisons ------------------------------------------------------------------------- */

double th_tol_mean(size_t count) {
  return fmax(TH_TOL_SCORE, TH_TOL_MAP / sqrt((double)count));
}

/* The worst |got - want| over n elements read through `get`; the index of the first non-finite
 * `got` wins outright, as it means an element was never written (or the engine blew up). */
struct worst {
  size_t index;
  double diff;
  int nonfinite;
};

#define TH_FIND_WORST(result, got, want, n)                                                        \
  do {                                                                                             \
    (result).index = 0;                                                                            \
    (result).diff = 0.0;                                                                           \
    (result).nonfinite = 0;                                                                        \
    for (size_t i_ = 0; i_ < (n); i_++) {                                                          \
      double g_ = (double)(got)[i_], w_ = (double)(want)[i_];                                      \
      if (!isfinite(g_)) {                                                                         \
        (result).index = i_;                                                                       \
        (result).nonfinite = 1;                                                                    \
        break;                                                                                     \
      }                                                                                            \
      if (fabs(g_ - w_) > (result).diff) {                                                         \
        (result).diff = fabs(g_ - w_);                                                             \
        (result).index = i_;                                                                       \
      }                                                                                            \
    }                                                                                              \
  } while (0)

static void report_worst(const char *what, struct worst w, double got, double want, size_t n,
                         double tol) {
  if (w.nonfinite)
    fail_msg("%s: element %zu of %zu is %g (never written, or not finite); expected %.9g", what,
             w.index, n, got, want);
  if (w.diff > tol)
    fail_msg("%s: element %zu of %zu is %.9g, expected %.9g: |diff| %.3g > %.3g", what, w.index, n,
             got, want, w.diff, tol);
}

void th_check_abs_d(const char *what, const double *got, const double *want, size_t n, double tol) {
  struct worst w;
  TH_FIND_WORST(w, got, want, n);
  if (n > 0)
    report_worst(what, w, got[w.index], want[w.index], n, tol);
}

void th_check_abs_f(const char *what, const float *got, const double *want, size_t n, double tol) {
  struct worst w;
  TH_FIND_WORST(w, got, want, n);
  if (n > 0)
    report_worst(what, w, got[w.index], want[w.index], n, tol);
}

void th_check_abs_ff(const char *what, const float *got, const float *want, size_t n, double tol) {
  struct worst w;
  TH_FIND_WORST(w, got, want, n);
  if (n > 0)
    report_worst(what, w, got[w.index], want[w.index], n, tol);
}

void th_check_rel_l2(const char *what, const float *got, const double *want, size_t n, double tol,
                     double scale) {
  th_check_written_f(what, got, n);
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    err += d * d;
    norm += want[i] * want[i];
  }
  err = sqrt(err);
  norm = sqrt(norm);
  /* A gradient that is (nearly) zero, such as that of identical images, has no meaningful
   * relative error: there, measure against the norm of a gradient whose every element has the
   * typical size instead. Float32 arithmetic leaves ~1e-4 of that in such a cancelling sum
   * (terms of order 1/C2 cancel), so "zero" means an error far below 1e-3 of it. */
  double floor = scale * sqrt((double)n);
  double rel = err / (norm > floor ? norm : floor);
  if (rel > tol)
    fail_msg("%s: relative L2 error %.3g > %.3g (||got - ref|| %.3g, ||ref|| %.3g, %zu elements)",
             what, rel, tol, err, norm, n);
}

void th_check_written_f(const char *what, const float *got, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(got[i]))
      fail_msg("%s: element %zu of %zu is %g (never written, or not finite)", what, i, n,
               (double)got[i]);
}

void th_check_written_d(const char *what, const double *got, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(got[i]))
      fail_msg("%s: element %zu of %zu is %g (never written, or not finite)", what, i, n, got[i]);
}

void th_check_same_bits(const char *what, const void *a, const void *b, size_t bytes) {
  const unsigned char *pa = a, *pb = b;
  for (size_t i = 0; i < bytes; i++)
    if (pa[i] != pb[i])
      fail_msg("%s: differs at byte %zu of %zu", what, i, bytes);
}

void th_buffers_check(const struct th_buffers *b) {
  th_check_abs_d("scores", b->out.scores, b->ref.scores, b->scores,
                 th_tol_mean(b->channels * b->map_h * b->map_w));
  if (b->out.channel_scores != NULL)
    th_check_abs_d("channel_scores", b->out.channel_scores, b->ref.channel_scores,
                   b->channel_scores, th_tol_mean(b->map_h * b->map_w));
  if (b->out.map != NULL) {
    /* Name the worst pixel, for a failure to be looked at in the reference. */
    struct worst w;
    TH_FIND_WORST(w, b->out.map, b->ref.map, b->map);
    size_t plane = w.index / (b->map_h * b->map_w), at = w.index % (b->map_h * b->map_w);
    char what[128];
    snprintf(what, sizeof(what), "map (pair %zu, channel %zu, row %zu, column %zu of %zux%zu)",
             plane / b->channels, plane % b->channels, at / b->map_w, at % b->map_w, b->map_h,
             b->map_w);
    th_check_abs_f(what, b->out.map, b->ref.map, b->map, TH_TOL_MAP);
  }
  if (b->out.block_means != NULL)
    th_check_abs_f("block_means", b->out.block_means, b->ref.block_means, b->block_means,
                   TH_TOL_MAP);
  if (b->out.grad_img1 != NULL)
    th_check_rel_l2("grad_img1", b->out.grad_img1, b->ref.grad_img1, b->grad, TH_TOL_GRAD_REL,
                    b->grad_scale);
  if (b->out.grad_img2 != NULL)
    th_check_rel_l2("grad_img2", b->out.grad_img2, b->ref.grad_img2, b->grad, TH_TOL_GRAD_REL,
                    b->grad_scale);
}

/* ---- Running the cases on every backend -------------------------------------------------- */

int th_run(const char *group, const struct th_case *cases, size_t count, enum th_mode mode) {
  const char *only = getenv("SSIM_TEST_BACKEND");
  const char *backends[16];
  size_t backend_count = 0;
  for (size_t i = 0; ssim_backend_name_at(i) != NULL && backend_count < 16; i++) {
    const char *name = ssim_backend_name_at(i);
    if (only == NULL || only[0] == '\0' || strcmp(only, name) == 0)
      backends[backend_count++] = name;
  }
  if (backend_count == 0) {
    /* A focused run that tests nothing must not pass. */
    fprintf(stderr, "%s: SSIM_TEST_BACKEND=%s is not built into this engine\n", group, only);
    return 1;
  }
  if (mode == TH_GPU_BACKENDS) {
    size_t gpus = 0;
    for (size_t i = 0; i < backend_count; i++)
      if (strcmp(backends[i], "cpu") != 0)
        backends[gpus++] = backends[i];
    backend_count = gpus;
  }
  if (mode == TH_ONCE || backend_count == 0) {
    backends[0] = NULL;
    backend_count = 1;
  }
  const char *filter = getenv("SSIM_TEST_FILTER");
  if (filter != NULL && filter[0] != '\0')
    cmocka_set_test_filter(filter);
  printf("%s: seed %llu (replay with SSIM_TEST_SEED=%llu)\n", group, (unsigned long long)th_seed(),
         (unsigned long long)th_seed());
  fflush(stdout);

  size_t total = count * backend_count;
  struct CMUnitTest *tests = calloc(total, sizeof(*tests));
  struct th_ctx *ctx = calloc(total, sizeof(*ctx));
  char *names = calloc(total, 256);
  if (tests == NULL || ctx == NULL || names == NULL) {
    fprintf(stderr, "%s: out of memory\n", group);
    return 1;
  }
  for (size_t b = 0; b < backend_count; b++) {
    for (size_t c = 0; c < count; c++) {
      size_t t = b * count + c;
      ctx[t] = (struct th_ctx){
          .backend = backends[b], .case_name = cases[c].name, .param = cases[c].param};
      if (backends[b] != NULL)
        snprintf(names + 256 * t, 256, "%s: %s", backends[b], cases[c].name);
      else
        snprintf(names + 256 * t, 256, "%s", cases[c].name);
      tests[t] = (struct CMUnitTest){.name = names + 256 * t,
                                     .test_func = cases[c].fn,
                                     .teardown_func = release_all,
                                     .initial_state = &ctx[t]};
    }
  }
  int failed = _cmocka_run_group_tests(group, tests, total, NULL, NULL);
  free(tests);
  free(ctx);
  free(names);
  return failed;
}
