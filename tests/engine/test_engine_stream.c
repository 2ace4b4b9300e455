/*
 * test_engine_stream.c: ssim_compute_async, the stream-ordered form of ssim_compute on device
 * memory. On a CUDA device it must give bitwise the scores, channel scores, block means and map
 * of ssim_compute on the same device buffers, write every output element, keep its calls in
 * order across streams, and turn non-finite input into NaN scores that do not leak into the next
 * call. Everywhere, a backend without device memory and a host-memory request are refused.
 * Built only with the CUDA backend: it allocates device memory through the CUDA runtime.
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

#include <cuda_runtime_api.h>

#include "harness.h"

static void check_cuda(cudaError_t err, const char *what) {
  if (err != cudaSuccess)
    fail_msg("%s: %s", what, cudaGetErrorString(err));
}

static void *device_alloc(size_t bytes) {
  void *p = NULL;
  check_cuda(cudaMalloc(&p, bytes), "cudaMalloc");
  /* All bits set: NaN as float and as double, so an unwritten element shows. */
  check_cuda(cudaMemset(p, 0xff, bytes), "cudaMemset");
  return p;
}

static void *device_copy(const void *host, size_t bytes) {
  void *p = device_alloc(bytes);
  check_cuda(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  return p;
}

static void *host_copy(const void *device, size_t bytes) {
  void *p = th_alloc(bytes);
  check_cuda(cudaMemcpy(p, device, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  return p;
}

static void check_call(ssim_engine_t *engine, int err, const char *call) {
  if (err != 0)
    fail_msg("%s: %s (%s)", call, ssim_err_name(err), ssim_engine_last_error(engine));
}

/* ---- Refusals, on every machine ---------------------------------------------------------- */

static void test_refusals(void **state) {
  (void)state;
  float img[16 * 16];
  for (size_t i = 0; i < 16 * 16; i++)
    img[i] = (float)(i % 7) / 7.0f;
  double score = 0.0;
  struct ssim_inputs in = {
      {1, 1, 16, 16}, SSIM_DTYPE_F32, SSIM_PADDING_SAME, SSIM_MEMORY_DEVICE, img, img};
  struct ssim_outputs out = {&score, NULL, NULL, NULL, NULL, NULL};

  ssim_engine_t *cpu = th_engine_open("cpu", 1);
  assert_int_equal(ssim_compute_async(cpu, &in, &out, NULL), SSIM_EUNSUPPORTED);
  assert_non_null(strstr(ssim_engine_last_error(cpu), "cpu"));
  in.memory = SSIM_MEMORY_HOST;
  assert_int_equal(ssim_compute_async(cpu, &in, &out, NULL), SSIM_EINVAL);
  in.memory = SSIM_MEMORY_DEVICE;
  out.scores = NULL;
  assert_int_equal(ssim_compute_async(cpu, &in, &out, NULL), SSIM_ENULL);
  assert_int_equal(ssim_compute_async(NULL, &in, &out, NULL), SSIM_ENULL);
  out.scores = &score;
  in.shape.width = 0;
  assert_int_equal(ssim_compute_async(cpu, &in, &out, NULL), SSIM_ESHAPE);
  th_engine_close(cpu);
}

/* ---- On a CUDA device -------------------------------------------------------------------- */

struct stream_case {
  size_t batch, channels, height, width;
  ssim_dtype dtype;
  ssim_padding padding;
};

/* One batch on the device, with ssim_compute's answers for it as the expected ones, and device
 * outputs for an asynchronous call on it. */
struct device_batch {
  struct ssim_inputs in;   /* device images */
  struct ssim_outputs out; /* device, poisoned until an asynchronous call writes them */
  size_t pairs, planes, map_px, blocks;
  double *scores, *channels;   /* host, from ssim_compute */
  float *block_means, *map;    /* host, from ssim_compute (the map through the device) */
  void *host_img1, *host_img2; /* the images as drawn */
};

static void device_batch_make(struct device_batch *d, ssim_engine_t *engine,
                              const struct stream_case *c, struct th_rng *rng) {
  struct ssim_inputs host = {{c->batch, c->channels, c->height, c->width},
                             c->dtype,
                             c->padding,
                             SSIM_MEMORY_HOST,
                             NULL,
                             NULL};
  th_images_make(rng, &host, 0.1);
  const size_t bytes = th_elements(&host.shape) * th_dtype_size(c->dtype);
  d->host_img1 = th_alloc(bytes);
  d->host_img2 = th_alloc(bytes);
  memcpy(d->host_img1, host.img1, bytes);
  memcpy(d->host_img2, host.img2, bytes);
  d->in = host;
  d->in.memory = SSIM_MEMORY_DEVICE;
  d->in.img1 = device_copy(host.img1, bytes);
  d->in.img2 = device_copy(host.img2, bytes);
  th_images_free(&host);

  size_t map_h, map_w;
  assert_int_equal(ssim_map_size(c->height, c->width, c->padding, &map_h, &map_w), 0);
  d->pairs = c->batch;
  d->planes = c->batch * c->channels;
  d->map_px = map_h * map_w;
  d->blocks =
      c->batch * ((map_h + SSIM_BLOCK - 1) / SSIM_BLOCK) * ((map_w + SSIM_BLOCK - 1) / SSIM_BLOCK);
  d->scores = th_doubles_poisoned(d->pairs);
  d->channels = th_doubles_poisoned(d->planes);
  d->block_means = th_floats_poisoned(d->blocks);
  float *dmap = device_alloc(d->planes * d->map_px * sizeof(float));
  struct ssim_outputs out = {d->scores, d->channels, dmap, d->block_means, NULL, NULL};
  check_call(engine, ssim_compute(engine, &d->in, &out), "ssim_compute");
  d->map = host_copy(dmap, d->planes * d->map_px * sizeof(float));
  check_cuda(cudaFree(dmap), "cudaFree");
  th_check_written_d("ssim_compute scores", d->scores, d->pairs);
  th_check_written_f("ssim_compute map", d->map, d->planes * d->map_px);
  d->out = (struct ssim_outputs){device_alloc(d->pairs * sizeof(double)),
                                 device_alloc(d->planes * sizeof(double)),
                                 device_alloc(d->planes * d->map_px * sizeof(float)),
                                 device_alloc(d->blocks * sizeof(float)),
                                 NULL,
                                 NULL};
}

static void device_batch_free(struct device_batch *d) {
  (void)cudaFree(d->out.scores);
  (void)cudaFree(d->out.channel_scores);
  (void)cudaFree(d->out.map);
  (void)cudaFree(d->out.block_means);
  (void)cudaFree((void *)d->in.img1);
  (void)cudaFree((void *)d->in.img2);
  th_free(d->scores);
  th_free(d->channels);
  th_free(d->block_means);
  th_free(d->map);
  th_free(d->host_img1);
  th_free(d->host_img2);
}

/* A stream of the caller's, as a framework would pass one. */
static cudaStream_t stream_new(void) {
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  return stream;
}

/* The asynchronous outputs equal ssim_compute's, bit for bit. */
static void check_same(const struct device_batch *d) {
  const struct ssim_outputs *out = &d->out;
  double *scores = host_copy(out->scores, d->pairs * sizeof(double));
  double *channels = host_copy(out->channel_scores, d->planes * sizeof(double));
  float *blocks = host_copy(out->block_means, d->blocks * sizeof(float));
  float *map = host_copy(out->map, d->planes * d->map_px * sizeof(float));
  th_check_same_bits("scores", scores, d->scores, d->pairs * sizeof(double));
  th_check_same_bits("channel scores", channels, d->channels, d->planes * sizeof(double));
  th_check_same_bits("block means", blocks, d->block_means, d->blocks * sizeof(float));
  th_check_same_bits("map", map, d->map, d->planes * d->map_px * sizeof(float));
  th_free(scores);
  th_free(channels);
  th_free(blocks);
  th_free(map);
}

/* The calls that want scores alone (with or without channel scores), which the inference launch
 * finishes itself (up to 256 pairs), give the bits of the call that also wants block means and the
 * map (finished by a kernel of its own): asynchronously on `stream`, and through ssim_compute. */
static void check_scores_alone(ssim_engine_t *engine, const struct device_batch *d,
                               cudaStream_t stream) {
  for (int with_channels = 0; with_channels < 2; with_channels++) {
    double *scores = device_alloc(d->pairs * sizeof(double));
    double *channels = with_channels ? device_alloc(d->planes * sizeof(double)) : NULL;
    struct ssim_outputs out = {scores, channels, NULL, NULL, NULL, NULL};
    check_call(engine, ssim_compute_async(engine, &d->in, &out, stream), "ssim_compute_async");
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    double *got = host_copy(scores, d->pairs * sizeof(double));
    th_check_same_bits("async scores alone", got, d->scores, d->pairs * sizeof(double));
    th_free(got);
    if (channels != NULL) {
      got = host_copy(channels, d->planes * sizeof(double));
      th_check_same_bits("async channel scores", got, d->channels, d->planes * sizeof(double));
      th_free(got);
    }
    (void)cudaFree(scores);
    (void)cudaFree(channels);

    struct ssim_outputs host = {th_doubles_poisoned(d->pairs),
                                with_channels ? th_doubles_poisoned(d->planes) : NULL,
                                NULL,
                                NULL,
                                NULL,
                                NULL};
    check_call(engine, ssim_compute(engine, &d->in, &host), "ssim_compute");
    th_check_same_bits("scores alone", host.scores, d->scores, d->pairs * sizeof(double));
    if (host.channel_scores != NULL)
      th_check_same_bits("channel scores", host.channel_scores, d->channels,
                         d->planes * sizeof(double));
    th_free(host.scores);
    th_free(host.channel_scores);
  }
}

/* A CUDA engine for the case, and the case's random generator; skips where there is no device. */
static ssim_engine_t *open_cuda(const struct th_ctx *ctx, struct th_rng *rng) {
  if (ctx->backend == NULL || strcmp(ctx->backend, "cuda") != 0)
    th_skip("no CUDA backend with a usable device: ssim_compute_async has nothing to run on");
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    th_skip("the CUDA runtime sees no device");
  th_rng_init(rng, ctx->case_name);
  return th_engine_open("cuda", 0);
}

/* The same answers as ssim_compute, every element written, on a stream of the caller's. */
static void test_same_as_compute(void **state) {
  const struct th_ctx *ctx = *state;
  const struct stream_case *c = ctx->param;
  struct th_rng rng;
  ssim_engine_t *engine = open_cuda(ctx, &rng);
  struct device_batch d;
  device_batch_make(&d, engine, c, &rng);
  cudaStream_t stream = stream_new();
  check_call(engine, ssim_compute_async(engine, &d.in, &d.out, stream), "ssim_compute_async");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  check_same(&d);

  /* The default stream (NULL) works as well. */
  check_cuda(cudaMemset(d.out.scores, 0xff, d.pairs * sizeof(double)), "cudaMemset");
  check_call(engine, ssim_compute_async(engine, &d.in, &d.out, NULL), "ssim_compute_async");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  check_same(&d);

  check_scores_alone(engine, &d, stream);
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  device_batch_free(&d);
  th_engine_close(engine);
}

/* Two batches queued on two streams without waiting in between: the engine orders its calls,
 * which share its buffers, so each gets its own answers. */
static void test_calls_in_order(void **state) {
  const struct th_ctx *ctx = *state;
  const struct stream_case *c = ctx->param;
  struct th_rng rng;
  ssim_engine_t *engine = open_cuda(ctx, &rng);
  struct device_batch a, b;
  device_batch_make(&a, engine, c, &rng);
  device_batch_make(&b, engine, c, &rng);
  cudaStream_t s1 = stream_new(), s2 = stream_new();
  for (int round = 0; round < 3; round++) {
    check_call(engine, ssim_compute_async(engine, &a.in, &a.out, s1), "ssim_compute_async");
    check_call(engine, ssim_compute_async(engine, &b.in, &b.out, s2), "ssim_compute_async");
  }
  check_cuda(cudaStreamSynchronize(s1), "cudaStreamSynchronize");
  check_cuda(cudaStreamSynchronize(s2), "cudaStreamSynchronize");
  check_same(&a);
  check_same(&b);
  check_cuda(cudaStreamDestroy(s1), "cudaStreamDestroy");
  check_cuda(cudaStreamDestroy(s2), "cudaStreamDestroy");
  device_batch_free(&a);
  device_batch_free(&b);
  th_engine_close(engine);
}

/* Every score and channel score of an asynchronous call is NaN. */
static void check_all_nan(const double *device_scores, size_t n, const char *what) {
  double *scores = host_copy(device_scores, n * sizeof(double));
  for (size_t i = 0; i < n; i++)
    if (!isnan(scores[i]))
      fail_msg("%s %zu of a call with NaN input is %.9g, not NaN", what, i, scores[i]);
  th_free(scores);
}

/* NaN in one float pixel of the last pair: every score and channel score of the asynchronous
 * call is NaN, with or without the outputs that make it finish in a kernel of its own (those of
 * the other pairs too), ssim_compute fails with SSIM_ENONFINITE, and the next clean call is not
 * affected. */
static void test_nonfinite(void **state) {
  const struct th_ctx *ctx = *state;
  const struct stream_case *c = ctx->param;
  struct th_rng rng;
  ssim_engine_t *engine = open_cuda(ctx, &rng);
  struct device_batch d;
  device_batch_make(&d, engine, c, &rng);
  const size_t elements = th_elements(&d.in.shape);
  float *bad = th_alloc(elements * sizeof(float));
  memcpy(bad, d.host_img2, elements * sizeof(float));
  bad[elements - 1 - elements / (2 * d.planes)] = NAN;
  struct ssim_inputs bad_in = d.in;
  bad_in.img2 = device_copy(bad, elements * sizeof(float));

  check_call(engine, ssim_compute_async(engine, &bad_in, &d.out, NULL), "ssim_compute_async");
  check_all_nan(d.out.scores, d.pairs, "score");
  check_all_nan(d.out.channel_scores, d.planes, "channel score");
  struct ssim_outputs alone = {d.out.scores, d.out.channel_scores, NULL, NULL, NULL, NULL};
  check_cuda(cudaMemset(d.out.scores, 0, d.pairs * sizeof(double)), "cudaMemset");
  check_cuda(cudaMemset(d.out.channel_scores, 0, d.planes * sizeof(double)), "cudaMemset");
  check_call(engine, ssim_compute_async(engine, &bad_in, &alone, NULL), "ssim_compute_async");
  check_all_nan(d.out.scores, d.pairs, "score");
  check_all_nan(d.out.channel_scores, d.planes, "channel score");

  double *host_scores = th_doubles_poisoned(d.pairs);
  struct ssim_outputs host_out = {host_scores, NULL, NULL, NULL, NULL, NULL};
  assert_int_equal(ssim_compute(engine, &bad_in, &host_out), SSIM_ENONFINITE);
  th_free(host_scores);

  check_call(engine, ssim_compute_async(engine, &d.in, &d.out, NULL), "ssim_compute_async");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  check_same(&d);

  (void)cudaFree((void *)bad_in.img2);
  th_free(bad);
  device_batch_free(&d);
  th_engine_close(engine);
}

static const struct stream_case params[] = {
    {1, 1, 1, 1, SSIM_DTYPE_F32, SSIM_PADDING_SAME},
    {2, 3, 37, 53, SSIM_DTYPE_U8, SSIM_PADDING_VALID},
    {3, 1, 130, 201, SSIM_DTYPE_U16, SSIM_PADDING_SAME},
    {2, 3, 96, 256, SSIM_DTYPE_F32, SSIM_PADDING_SAME},
    {1, 2, 517, 389, SSIM_DTYPE_F32, SSIM_PADDING_VALID},
    {4, 3, 40, 70, SSIM_DTYPE_U8, SSIM_PADDING_SAME},
    {300, 1, 24, 40, SSIM_DTYPE_U8, SSIM_PADDING_SAME}, /* more pairs than a launch finishes */
    /* Tall and narrow: 1028 block sums a plane, from walks of many blocks. */
    {1, 2, 16448, 64, SSIM_DTYPE_F32, SSIM_PADDING_SAME},
};
#define PARAM_COUNT (sizeof(params) / sizeof(params[0]))
static const struct stream_case float_case = {2, 3, 67, 140, SSIM_DTYPE_F32, SSIM_PADDING_SAME};

int main(void) {
  static char names[PARAM_COUNT][96];
  struct th_case gpu[PARAM_COUNT + 2];
  for (size_t i = 0; i < PARAM_COUNT; i++) {
    const struct stream_case *c = &params[i];
    snprintf(names[i], sizeof(names[0]), "async as compute: %zux%zu c%zu b%zu %s %s", c->height,
             c->width, c->channels, c->batch, th_dtype_name(c->dtype), th_padding_name(c->padding));
    gpu[i] = (struct th_case){names[i], test_same_as_compute, c};
  }
  gpu[PARAM_COUNT] =
      (struct th_case){"async calls in order across streams", test_calls_in_order, &params[3]};
  gpu[PARAM_COUNT + 1] =
      (struct th_case){"async NaN input gives NaN scores", test_nonfinite, &float_case};
  const struct th_case once[] = {
      {"async refusals: cpu backend, host memory, NULL", test_refusals, NULL},
  };
  int failed = th_run("engine stream", once, 1, TH_ONCE);
  failed += th_run("engine stream on a GPU", gpu, PARAM_COUNT + 2, TH_GPU_BACKENDS);
  return th_exit_status(failed, PARAM_COUNT + 3);
}
