/*
 * test_engine_errors.c: bad input gets the documented error code, a message in
 * ssim_engine_last_error, and leaves the engine working: after every error, a good call on the
 * same engine must succeed and clear the message.
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

/* Images and outputs of a small good request, reused by every check on an engine. */
struct fixture {
  ssim_engine_t *engine;
  float img1[4 * 16 * 16], img2[4 * 16 * 16];
  float grad_map[4 * 16 * 16];
  float grad1[4 * 16 * 16], grad2[4 * 16 * 16];
  double scores[4];
};

static struct ssim_inputs good_inputs(struct fixture *f) {
  return (struct ssim_inputs){.shape = {.batch = 2, .channels = 2, .height = 16, .width = 16},
                              .dtype = SSIM_DTYPE_F32,
                              .padding = SSIM_PADDING_SAME,
                              .memory = SSIM_MEMORY_HOST,
                              .img1 = f->img1,
                              .img2 = f->img2};
}

static struct fixture *fixture_open(const char *backend) {
  ssim_engine_t *engine = th_engine_open(backend, 0);
  struct fixture *f = th_alloc(sizeof(*f));
  memset(f, 0, sizeof(*f));
  f->engine = engine;
  for (size_t i = 0; i < sizeof(f->img1) / sizeof(f->img1[0]); i++) {
    f->img1[i] = (float)((i * 37 % 101) / 100.0);
    f->img2[i] = (float)((i * 53 % 97) / 96.0);
    f->grad_map[i] = 1.0f;
  }
  return f;
}

static void fixture_close(struct fixture *f) {
  th_engine_close(f->engine);
  th_free(f);
}

/* Checks that a call returned `want`, left a message naming it, and that the engine still works. */
static void expect_error(struct fixture *f, int got, int want, const char *call) {
  if (got != want)
    fail_msg("%s: returned %s (%d), expected %s", call, ssim_err_name(got), got,
             ssim_err_name(want));
  const char *message = ssim_engine_last_error(f->engine);
  assert_non_null(message);
  if (strstr(message, ssim_err_name(want)) == NULL)
    fail_msg("%s: last error \"%s\" does not name %s", call, message, ssim_err_name(want));
  struct ssim_inputs in = good_inputs(f);
  struct ssim_outputs out = {.scores = f->scores};
  int err = ssim_compute(f->engine, &in, &out);
  if (err != 0)
    fail_msg("after %s: a good ssim_compute failed: %s (%s)", call, ssim_err_name(err),
             ssim_engine_last_error(f->engine));
  assert_string_equal(ssim_engine_last_error(f->engine), "");
  assert_true(isfinite(f->scores[0]) && isfinite(f->scores[1]));
}

static void test_null_pointers(void **state) {
  const struct th_ctx *ctx = *state;
  struct fixture *f = fixture_open(ctx->backend);
  struct ssim_inputs in = good_inputs(f);
  struct ssim_outputs out = {.scores = f->scores};

  assert_int_equal(ssim_compute(NULL, &in, &out), SSIM_ENULL);
  assert_int_equal(ssim_backward(NULL, &in, f->grad_map, f->grad1, f->grad2), SSIM_ENULL);
  expect_error(f, ssim_compute(f->engine, NULL, &out), SSIM_ENULL, "compute(inputs NULL)");
  expect_error(f, ssim_compute(f->engine, &in, NULL), SSIM_ENULL, "compute(outputs NULL)");
  struct ssim_outputs no_scores = {.map = NULL};
  expect_error(f, ssim_compute(f->engine, &in, &no_scores), SSIM_ENULL, "compute(scores NULL)");
  struct ssim_inputs bad = in;
  bad.img1 = NULL;
  expect_error(f, ssim_compute(f->engine, &bad, &out), SSIM_ENULL, "compute(img1 NULL)");
  expect_error(f, ssim_backward(f->engine, &bad, f->grad_map, f->grad1, NULL), SSIM_ENULL,
               "backward(img1 NULL)");
  bad = in;
  bad.img2 = NULL;
  expect_error(f, ssim_compute(f->engine, &bad, &out), SSIM_ENULL, "compute(img2 NULL)");
  expect_error(f, ssim_backward(f->engine, &bad, f->grad_map, NULL, f->grad2), SSIM_ENULL,
               "backward(img2 NULL)");
  expect_error(f, ssim_backward(f->engine, NULL, f->grad_map, f->grad1, f->grad2), SSIM_ENULL,
               "backward(inputs NULL)");
  expect_error(f, ssim_backward(f->engine, &in, NULL, f->grad1, f->grad2), SSIM_ENULL,
               "backward(grad_map NULL)");
  expect_error(f, ssim_backward(f->engine, &in, f->grad_map, NULL, NULL), SSIM_ENULL,
               "backward(both gradients NULL)");
  fixture_close(f);
}

static void test_zero_sizes(void **state) {
  const struct th_ctx *ctx = *state;
  struct fixture *f = fixture_open(ctx->backend);
  struct ssim_outputs out = {.scores = f->scores};
  for (int dim = 0; dim < 4; dim++) {
    for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
      struct ssim_inputs in = good_inputs(f);
      in.padding = (ssim_padding)padding;
      size_t *field[] = {&in.shape.batch, &in.shape.channels, &in.shape.height, &in.shape.width};
      *field[dim] = 0;
      char call[64];
      snprintf(call, sizeof(call), "compute(dimension %d = 0, %s)", dim,
               th_padding_name(in.padding));
      expect_error(f, ssim_compute(f->engine, &in, &out), SSIM_ESHAPE, call);
      snprintf(call, sizeof(call), "backward(dimension %d = 0, %s)", dim,
               th_padding_name(in.padding));
      expect_error(f, ssim_backward(f->engine, &in, f->grad_map, f->grad1, f->grad2), SSIM_ESHAPE,
                   call);
    }
  }
  size_t mh, mw;
  assert_int_equal(ssim_map_size(0, 5, SSIM_PADDING_SAME, &mh, &mw), SSIM_ESHAPE);
  assert_int_equal(ssim_map_size(5, 0, SSIM_PADDING_SAME, &mh, &mw), SSIM_ESHAPE);
  fixture_close(f);
}

/* Sizes whose element count, or byte count of floats, does not fit in size_t. The buffers are
 * the fixture's small ones: the engine must refuse before touching (or allocating) anything. */
static void test_overflow(void **state) {
  const struct th_ctx *ctx = *state;
  struct fixture *f = fixture_open(ctx->backend);
  struct ssim_outputs out = {.scores = f->scores};
  const struct ssim_shape shapes[] = {
      {SIZE_MAX, 2, 16, 16},
      {1, 1, SIZE_MAX / 2 + 1, 2},
      {2, 1, 1, SIZE_MAX / 2 + 1},
      {1, 1, 1, SIZE_MAX / 4 + 1}, /* the elements fit, their bytes as floats do not */
      {(size_t)1 << (sizeof(size_t) * 4), 1, (size_t)1 << (sizeof(size_t) * 4), 16},
      {1, SIZE_MAX / 3, 3, 3},
  };
  for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
    for (int dtype = SSIM_DTYPE_U8; dtype <= SSIM_DTYPE_F32; dtype++) {
      struct ssim_inputs in = good_inputs(f);
      in.shape = shapes[i];
      in.dtype = (ssim_dtype)dtype;
      char call[96];
      snprintf(call, sizeof(call), "compute(overflowing shape %zu, %s)", i,
               th_dtype_name(in.dtype));
      expect_error(f, ssim_compute(f->engine, &in, &out), SSIM_EOVERFLOW, call);
      snprintf(call, sizeof(call), "backward(overflowing shape %zu, %s)", i,
               th_dtype_name(in.dtype));
      expect_error(f, ssim_backward(f->engine, &in, f->grad_map, f->grad1, f->grad2),
                   SSIM_EOVERFLOW, call);
    }
  }
  fixture_close(f);
}

static void test_too_small_for_valid(void **state) {
  const struct th_ctx *ctx = *state;
  struct fixture *f = fixture_open(ctx->backend);
  struct ssim_outputs out = {.scores = f->scores};
  static const size_t sizes[][2] = {{10, 16}, {16, 10}, {1, 1}, {10, 10}};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    struct ssim_inputs in = good_inputs(f);
    in.padding = SSIM_PADDING_VALID;
    in.shape.height = sizes[i][0];
    in.shape.width = sizes[i][1];
    expect_error(f, ssim_compute(f->engine, &in, &out), SSIM_ETOOSMALL, "compute(valid, < 11)");
    expect_error(f, ssim_backward(f->engine, &in, f->grad_map, f->grad1, NULL), SSIM_ETOOSMALL,
                 "backward(valid, < 11)");
    size_t mh, mw;
    assert_int_equal(ssim_map_size(sizes[i][0], sizes[i][1], SSIM_PADDING_VALID, &mh, &mw),
                     SSIM_ETOOSMALL);
  }
  /* 11x11 is the smallest that works, with a 1x1 map. */
  struct ssim_inputs in = good_inputs(f);
  in.padding = SSIM_PADDING_VALID;
  in.shape.height = in.shape.width = 11;
  assert_int_equal(ssim_compute(f->engine, &in, &out), 0);
  size_t mh = 0, mw = 0;
  assert_int_equal(ssim_map_size(11, 11, SSIM_PADDING_VALID, &mh, &mw), 0);
  assert_true(mh == 1 && mw == 1);
  assert_int_equal(ssim_map_size(11, 11, SSIM_PADDING_VALID, NULL, &mw), SSIM_ENULL);
  fixture_close(f);
}

/* NaN, +Inf and -Inf at the first, a middle and the last element of either image. */
static void test_nonfinite(void **state) {
  const struct th_ctx *ctx = *state;
  struct fixture *f = fixture_open(ctx->backend);
  struct ssim_outputs out = {.scores = f->scores};
  const float bad_values[] = {NAN, INFINITY, -INFINITY};
  const char *bad_names[] = {"NaN", "+Inf", "-Inf"};
  size_t n = sizeof(f->img1) / sizeof(f->img1[0]);
  const size_t positions[] = {0, n / 2 + 3, n - 1};
  for (int image = 0; image < 2; image++) {
    float *img = image == 0 ? f->img1 : f->img2;
    for (size_t v = 0; v < 3; v++) {
      for (size_t p = 0; p < 3; p++) {
        for (int padding = SSIM_PADDING_SAME; padding <= SSIM_PADDING_VALID; padding++) {
          float saved = img[positions[p]];
          struct ssim_inputs in = good_inputs(f);
          in.padding = (ssim_padding)padding;
          char call[96];
          img[positions[p]] = bad_values[v];
          snprintf(call, sizeof(call), "compute(%s at element %zu of img%d, %s)", bad_names[v],
                   positions[p], image + 1, th_padding_name(in.padding));
          int err = ssim_compute(f->engine, &in, &out);
          img[positions[p]] = saved; /* restored before expect_error's good call */
          expect_error(f, err, SSIM_ENONFINITE, call);
          img[positions[p]] = bad_values[v];
          snprintf(call, sizeof(call), "backward(%s at element %zu of img%d, %s)", bad_names[v],
                   positions[p], image + 1, th_padding_name(in.padding));
          err = ssim_backward(f->engine, &in, f->grad_map, f->grad1, f->grad2);
          img[positions[p]] = saved;
          expect_error(f, err, SSIM_ENONFINITE, call);
        }
      }
    }
  }
  /* Finite float input outside [0, 1] is used as is, not an error. */
  f->img1[7] = 2.5f;
  f->img2[9] = -0.5f;
  struct ssim_inputs in = good_inputs(f);
  int err = ssim_compute(f->engine, &in, &out);
  if (err != 0)
    fail_msg("2.5 in img1: %s (%s)", ssim_err_name(err), ssim_engine_last_error(f->engine));
  fixture_close(f);
}

static void test_bad_enums(void **state) {
  const struct th_ctx *ctx = *state;
  struct fixture *f = fixture_open(ctx->backend);
  struct ssim_outputs out = {.scores = f->scores};
  /* For each field, one past its last value and a negative one (an enum may be signed). */
  static const int bad_values[3][2] = {{3, -1}, {2, -1}, {2, -1}};
  static const char *fields[3] = {"dtype", "padding", "memory"};
  for (int which = 0; which < 3; which++) {
    for (int k = 0; k < 2; k++) {
      int value = bad_values[which][k];
      struct ssim_inputs in = good_inputs(f);
      if (which == 0)
        in.dtype = (ssim_dtype)value;
      else if (which == 1)
        in.padding = (ssim_padding)value;
      else
        in.memory = (ssim_memory)value;
      char call[64];
      snprintf(call, sizeof(call), "compute(%s = %d)", fields[which], value);
      expect_error(f, ssim_compute(f->engine, &in, &out), SSIM_EINVAL, call);
      snprintf(call, sizeof(call), "backward(%s = %d)", fields[which], value);
      expect_error(f, ssim_backward(f->engine, &in, f->grad_map, f->grad1, f->grad2), SSIM_EINVAL,
                   call);
    }
  }
  size_t mh, mw;
  assert_int_equal(ssim_map_size(20, 20, (ssim_padding)2, &mh, &mw), SSIM_EINVAL);
  fixture_close(f);
}

/* ---- Not tied to a backend --------------------------------------------------------------- */

static void test_create_errors(void **state) {
  (void)state;
  struct ssim_engine_options opts;
  ssim_engine_options_init(&opts);
  assert_string_equal(opts.backend, "auto");
  assert_int_equal(opts.threads, 0);
  assert_int_equal(opts.device, 0);
  ssim_engine_t *engine = (ssim_engine_t *)&opts; /* must be reset to NULL on failure */
  char detail[256];

  assert_int_equal(ssim_engine_create(NULL, &engine, detail, sizeof(detail)), SSIM_ENULL);
  assert_int_equal(ssim_engine_create(&opts, NULL, detail, sizeof(detail)), SSIM_ENULL);

  const char *bad_backends[] = {"gpu", "", "CPU", "cuda ", "opencl"};
  for (size_t i = 0; i < sizeof(bad_backends) / sizeof(bad_backends[0]); i++) {
    opts.backend = bad_backends[i];
    detail[0] = '\0';
    engine = (ssim_engine_t *)&opts;
    int err = ssim_engine_create(&opts, &engine, detail, sizeof(detail));
    if (err != SSIM_EINVAL)
      fail_msg("backend \"%s\": %s, expected SSIM_EINVAL", bad_backends[i], ssim_err_name(err));
    assert_null(engine);
    assert_true(detail[0] != '\0');
  }
  ssim_engine_options_init(&opts);
  opts.threads = -1;
  detail[0] = '\0';
  assert_int_equal(ssim_engine_create(&opts, &engine, detail, sizeof(detail)), SSIM_EINVAL);
  assert_null(engine);
  assert_true(detail[0] != '\0');
  ssim_engine_options_init(&opts);
  opts.device = -1;
  assert_int_equal(ssim_engine_create(&opts, &engine, NULL, 0), SSIM_EINVAL);

  /* The CPU backend is always built, and "auto" (or NULL) always finds a backend. */
  ssim_engine_options_init(&opts);
  opts.backend = "cpu";
  assert_int_equal(ssim_engine_create(&opts, &engine, detail, sizeof(detail)), 0);
  assert_string_equal(ssim_engine_backend_name(engine), "cpu");
  assert_true(ssim_engine_device_name(engine)[0] != '\0');
  assert_string_equal(ssim_engine_last_error(engine), "");
  ssim_engine_destroy(engine);
  opts.backend = NULL;
  assert_int_equal(ssim_engine_create(&opts, &engine, detail, sizeof(detail)), 0);
  ssim_engine_destroy(engine);
  ssim_engine_destroy(NULL);

  /* The registry lists the CPU last, and nothing past its end. */
  size_t count = ssim_backend_count();
  assert_true(count >= 1);
  assert_string_equal(ssim_backend_name_at(count - 1), "cpu");
  assert_null(ssim_backend_name_at(count));
}

static void test_error_names(void **state) {
  (void)state;
  /* Every code of the map has its own name and message; unknown codes have fallbacks. */
  static const struct {
    int code;
    const char *name;
  } codes[] = {
#define ERRNO_ENTRY(name, code, msg) {SSIM_##name, "SSIM_" #name},
      SSIM_ERRNO_MAP(ERRNO_ENTRY)
#undef ERRNO_ENTRY
  };
  size_t count = sizeof(codes) / sizeof(codes[0]);
  for (size_t i = 0; i < count; i++) {
    assert_true(codes[i].code < 0);
    assert_string_equal(ssim_err_name(codes[i].code), codes[i].name);
    const char *message = ssim_strerror(codes[i].code);
    assert_non_null(message);
    assert_true(message[0] != '\0');
    assert_string_not_equal(message, ssim_strerror(12345));
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(message, ssim_strerror(codes[j].code));
  }
  assert_string_equal(ssim_err_name(12345), "SSIM_UNKNOWN");
  assert_string_equal(ssim_err_name(-12345), "SSIM_UNKNOWN");
  assert_non_null(ssim_strerror(-12345));
  assert_true(ssim_strerror(-12345)[0] != '\0');
}

static const struct th_case backend_cases[] = {
    {"NULL pointers: SSIM_ENULL", test_null_pointers, NULL},
    {"zero sizes: SSIM_ESHAPE", test_zero_sizes, NULL},
    {"size_t overflow: SSIM_EOVERFLOW", test_overflow, NULL},
    {"valid padding under 11 pixels: SSIM_ETOOSMALL", test_too_small_for_valid, NULL},
    {"NaN and infinity in float input: SSIM_ENONFINITE", test_nonfinite, NULL},
    {"bad enum values: SSIM_EINVAL", test_bad_enums, NULL},
};

static const struct th_case global_cases[] = {
    {"engine creation errors", test_create_errors, NULL},
    {"error names and messages", test_error_names, NULL},
};

int main(void) {
  int failed = th_run("engine errors: creation and names", global_cases,
                      sizeof(global_cases) / sizeof(global_cases[0]), TH_ONCE);
  failed += th_run("engine errors", backend_cases, sizeof(backend_cases) / sizeof(backend_cases[0]),
                   TH_EVERY_BACKEND);
  return failed != 0;
}
