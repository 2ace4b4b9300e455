/*
 * harness.h: what the engine test executables share: the seed, random images, the list of
 * backends under test, engine creation that skips where a backend has no device, NaN-poisoned
 * output buffers, and comparisons that say where they failed.
 *
 * Environment:
 *   SSIM_TEST_SEED=<n>       replay a run (every executable prints the seed it used)
 *   SSIM_TEST_BACKEND=<name> test only that backend (e.g. "cuda"), instead of every built one
 *   SSIM_TEST_FILTER=<glob>  run only the tests whose name matches (cmocka's * and ? wildcards),
 *                            e.g. "cpu: 64x64 c3 b5 u8*"
 *
 * Every function that fails a check does so through cmocka (fail_msg / skip), so they may only
 * be called from inside a running test.
 */
#ifndef SSIM_TEST_HARNESS_H
#define SSIM_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "reference.h"
#include "ssim.h"

/* The tolerances of the contract, against the float64 reference. */
#define TH_TOL_SCORE 1e-5    /* scores and channel scores, absolute */
#define TH_TOL_MAP 1e-4      /* map values and block means, max absolute */
#define TH_TOL_GRAD_REL 1e-3 /* gradients, ||got - ref|| / ||ref|| */

/*
 * Tolerance of a mean of `count` map values. A score is within TH_TOL_SCORE because it averages
 * many map values whose float32 errors (each allowed TH_TOL_MAP) mostly cancel; a mean of a
 * handful, such as the score of an 11x11 image under valid padding (one map value), cannot be
 * held tighter than TH_TOL_MAP / sqrt(count) without holding single map values to 1e-5, which
 * the map's own tolerance says float32 cannot promise. From 100 values on, this is TH_TOL_SCORE.
 */
double th_tol_mean(size_t count);

/* ---- Random numbers ---------------------------------------------------------------------- */

struct th_rng {
  uint64_t state;
};

/* The seed of this run: SSIM_TEST_SEED when set, else fresh. */
uint64_t th_seed(void);
/* A generator for one case: the run's seed mixed with the case's name, so a case draws the same
 * numbers on every backend and whatever other cases run. */
void th_rng_init(struct th_rng *rng, const char *case_name);
double th_rng_uniform(struct th_rng *rng); /* [0, 1) */
double th_rng_normal(struct th_rng *rng);  /* mean 0, deviation 1 */

/* ---- Images ------------------------------------------------------------------------------ */

size_t th_dtype_size(ssim_dtype dtype);
const char *th_dtype_name(ssim_dtype dtype);
const char *th_padding_name(ssim_padding padding);
/* Elements of one image of the batch: batch * channels * height * width. */
size_t th_elements(const struct ssim_shape *shape);

/*
 * Allocates and fills in->img1 with a textured image (smooth waves plus fine detail, like a
 * photograph's mix of flat and busy regions) and in->img2 with img1 plus Gaussian noise of
 * deviation `noise` (in [0, 1] units), both clamped to [0, 1] and stored in in->dtype.
 * Free with th_images_free.
 */
void th_images_make(struct th_rng *rng, struct ssim_inputs *in, double noise);
void th_images_free(struct ssim_inputs *in);
/* Writes value v (a [0, 1]-scaled intensity, or any float for f32) at element i of an image. */
void th_image_set(ssim_dtype dtype, void *img, size_t i, double v);

/* ---- Memory that a failing test does not leak ------------------------------------------- */

/*
 * A failed check leaves the test at once (cmocka longjmps), past its frees. So the tests take
 * their memory and engines from here: each is recorded, released by th_free / th_engine_close,
 * and whatever a test still holds when it ends is released after it, pass or fail, so that a
 * sanitizer build reports real leaks only.
 */
void *th_alloc(size_t bytes); /* fails the test when out of memory */
void th_free(void *p);        /* NULL is allowed */

/* ---- Backends and engines ---------------------------------------------------------------- */

/*
 * Engine with `backend` and `threads`; fails the test on any error but SSIM_ENOBACKEND, on which
 * it prints the reason and skips the test. Call it before allocating, as a skip leaves the test.
 */
ssim_engine_t *th_engine_open(const char *backend, int threads);
void th_engine_close(ssim_engine_t *engine);

/* Prints why and skips the running test (cmocka's skip), counting it. */
void th_skip(const char *why);
/* Tests skipped through th_skip so far: a run that skipped everything can say so to ctest. */
size_t th_skipped(void);
/* The exit status of a test executable: 0, 1 when a test failed, or TH_EXIT_SKIPPED when every
 * one of its `total` tests skipped (ctest shows it as skipped, not passed). */
#define TH_EXIT_SKIPPED 77
int th_exit_status(int failed, size_t total);

/* ---- Output buffers ---------------------------------------------------------------------- */

enum {
  TH_SCORES = 1 << 0, /* always allocated: ssim_compute requires it */
  TH_CHANNELS = 1 << 1,
  TH_MAP = 1 << 2,
  TH_BLOCKS = 1 << 3,
  TH_GRAD1 = 1 << 4,
  TH_GRAD2 = 1 << 5,
  TH_ALL = (1 << 6) - 1
};

/* Engine outputs (poisoned with NaN so an unwritten element shows) and reference outputs. */
struct th_buffers {
  struct ssim_outputs out;
  struct ref_outputs ref;
  size_t scores, channel_scores, map, block_means, grad; /* element counts */
  double grad_scale; /* 1 / (channels * map_h * map_w): a typical gradient element's size */
  size_t channels, map_h, map_w; /* to name the pixel a failure is at */
};

void th_buffers_alloc(struct th_buffers *b, const struct ssim_inputs *in, unsigned what);
void th_buffers_free(struct th_buffers *b);
/* Fills the reference side with ref_compute. */
void th_buffers_reference(struct th_buffers *b, const struct ssim_inputs *in);
/* Checks every engine output asked for against the reference, with the contract's tolerances. */
void th_buffers_check(const struct th_buffers *b);

float *th_floats_poisoned(size_t n);
/* Map values per pair of `in` (channels x map height x map width). */
size_t th_map_pixels_per_pair(const struct ssim_inputs *in);
/* A random upstream gradient dL/dmap for `in`: normal values divided by `divisor`, one per map
 * value of the batch. Free with th_free. */
float *th_grad_map_random(struct th_rng *rng, const struct ssim_inputs *in, double divisor);
double *th_doubles_poisoned(size_t n);
double *th_doubles(size_t n);

/* ---- Comparisons (fail the test with the worst element on failure) ----------------------- */

void th_check_abs_d(const char *what, const double *got, const double *want, size_t n, double tol);
void th_check_abs_f(const char *what, const float *got, const double *want, size_t n, double tol);
void th_check_abs_ff(const char *what, const float *got, const float *want, size_t n, double tol);
/* ||got - want||_2 / ||want||_2 <= tol; where ||want|| is (nearly) zero, the root mean square of
 * got - want must instead be below tol times `scale`, a typical element of such a gradient. */
void th_check_rel_l2(const char *what, const float *got, const double *want, size_t n, double tol,
                     double scale);
/* Every element is finite: the engine wrote it (outputs start as NaN). */
void th_check_written_f(const char *what, const float *got, size_t n);
void th_check_written_d(const char *what, const double *got, size_t n);
/* Bitwise equality, for runs that must be reproducible. */
void th_check_same_bits(const char *what, const void *a, const void *b, size_t bytes);

/* ---- Running the cases on every backend -------------------------------------------------- */

/* One case of a test table; `param` is the test's own description of it. */
struct th_case {
  const char *name;
  void (*fn)(void **state);
  const void *param;
};

/* What a test function receives in *state. */
struct th_ctx {
  const char *backend;
  const char *case_name; /* without the backend, to seed th_rng_init */
  const void *param;
};

enum th_mode {
  TH_ONCE,          /* each case once, with backend NULL (tests of the reference itself) */
  TH_EVERY_BACKEND, /* each case on every backend under test */
  TH_GPU_BACKENDS   /* each case on every non-CPU backend under test; once with backend NULL
                       when there is none, for the case to skip with that reason */
};

/* Runs the cases as one cmocka group; prints the seed first. Returns the number of failures. */
int th_run(const char *group, const struct th_case *cases, size_t count, enum th_mode mode);

#endif /* SSIM_TEST_HARNESS_H */
