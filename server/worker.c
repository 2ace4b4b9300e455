/*
 * worker.c: the engine worker thread.
 *
 * Ownership: struct ssimd_worker is created and stopped by the scheduler; `pending` and `stop`
 * are shared under `lock`; the engine and the staging buffers belong to the worker thread. The
 * jobs of a batch belong to the worker from ssimd_worker_run until `done` hands them back.
 */
#include "worker.h"

#include "http.h"
#include "job.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ssimd_worker {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct ssimd_batch *pending; /* at most one: the scheduler waits for `done` */
  int stop;
  ssim_engine_t *engine;
  struct ssimd_metrics *metrics;
  ssimd_worker_done_fn done;
  void *done_ctx;
  /* Staging for batches of more than one pair, grown as needed and reused. */
  void *stage1, *stage2;
  size_t stage_bytes;
};

static size_t dtype_size(ssim_dtype dtype) {
  return dtype == SSIM_DTYPE_U8 ? 1 : dtype == SSIM_DTYPE_U16 ? 2 : 4;
}

/* Every job of the batch gets the same error. */
static void fail_batch(struct ssimd_batch *batch, ssimd_error error, const char *message) {
  for (size_t i = 0; i < batch->count; i++) {
    ssimd_job_fail(batch->jobs[i], error, message, NULL);
    ssimd_image_clear(&batch->jobs[i]->img1);
    ssimd_image_clear(&batch->jobs[i]->img2);
  }
}

static int grow_staging(struct ssimd_worker *w, size_t bytes) {
  if (bytes <= w->stage_bytes)
    return 0;
  free(w->stage1);
  free(w->stage2);
  w->stage1 = malloc(bytes);
  w->stage2 = malloc(bytes);
  w->stage_bytes = w->stage1 != NULL && w->stage2 != NULL ? bytes : 0;
  return w->stage_bytes != 0 ? 0 : -1;
}

/* A pair's slice of a batch output: the whole buffer when the batch has one pair (handed over,
 * no copy), else a copy. NULL when out of memory; *whole is cleared when handed over. */
static float *take_slice(float **whole, size_t count, size_t index, size_t elems) {
  if (count == 1) {
    float *taken = *whole;
    *whole = NULL;
    return taken;
  }
  float *copy = malloc(elems * sizeof(float));
  if (copy != NULL)
    memcpy(copy, *whole + index * elems, elems * sizeof(float));
  return copy;
}

static void compute_batch(struct ssimd_worker *w, struct ssimd_batch *batch) {
  const struct ssimd_batch_key *key = &batch->key;
  size_t n = batch->count;
  size_t map_h = 0, map_w = 0;
  if (ssim_map_size(key->height, key->width, key->padding, &map_h, &map_w) != 0) {
    fail_batch(batch, SSIMD_ERROR_IMAGE_TOO_SMALL, NULL);
    return;
  }
  size_t plane = key->channels * key->height * key->width;
  size_t map_elems = key->channels * map_h * map_w;
  size_t blocks = ((map_h + SSIM_BLOCK - 1) / SSIM_BLOCK) * ((map_w + SSIM_BLOCK - 1) / SSIM_BLOCK);
  size_t bytes = plane * dtype_size(key->dtype);

  const void *in1 = batch->jobs[0]->img1.pixels, *in2 = batch->jobs[0]->img2.pixels;
  if (n > 1) {
    if (grow_staging(w, n * bytes) != 0) {
      fail_batch(batch, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory for the batch");
      return;
    }
    for (size_t i = 0; i < n; i++) {
      memcpy((char *)w->stage1 + i * bytes, batch->jobs[i]->img1.pixels, bytes);
      memcpy((char *)w->stage2 + i * bytes, batch->jobs[i]->img2.pixels, bytes);
    }
    in1 = w->stage1;
    in2 = w->stage2;
  }
  double *scores = malloc(n * sizeof(double));
  double *channel_scores = malloc(n * key->channels * sizeof(double));
  float *block_means = malloc(n * blocks * sizeof(float));
  float *map = key->want_map ? malloc(n * map_elems * sizeof(float)) : NULL;
  float *grad1 = key->want_gradient & 1 ? malloc(n * plane * sizeof(float)) : NULL;
  float *grad2 = key->want_gradient & 2 ? malloc(n * plane * sizeof(float)) : NULL;
  int err = 0;
  if (scores == NULL || channel_scores == NULL || block_means == NULL ||
      (key->want_map && map == NULL) || ((key->want_gradient & 1) && grad1 == NULL) ||
      ((key->want_gradient & 2) && grad2 == NULL))
    err = SSIM_ENOMEM;

  uint64_t start = ssimd_now_ns();
  if (err == 0) {
    struct ssim_inputs in = {
        .shape = {.batch = n,
                  .channels = key->channels,
                  .height = key->height,
                  .width = key->width},
        .dtype = key->dtype,
        .padding = key->padding,
        .memory = SSIM_MEMORY_HOST,
        .img1 = in1,
        .img2 = in2,
    };
    struct ssim_outputs out = {
        .scores = scores,
        .channel_scores = channel_scores,
        .map = map,
        .block_means = block_means,
        .grad_img1 = grad1,
        .grad_img2 = grad2,
    };
    err = ssim_compute(w->engine, &in, &out);
  }
  uint64_t end = ssimd_now_ns();
  double seconds = (double)(end - start) / 1e9;

  if (err != 0) {
    ssimd_error error = ssimd_error_from_engine(err);
    const char *why = ssim_engine_last_error(w->engine);
    ssimd_log_error("engine: %s (%zu pairs of %zux%zux%zu)", why[0] ? why : ssim_strerror(err), n,
                    key->channels, key->height, key->width);
    fail_batch(batch, error, error == SSIMD_ERROR_INTERNAL ? NULL : ssim_strerror(err));
  } else {
    uint64_t pixels = 0;
    for (size_t i = 0; i < n; i++) {
      struct ssimd_job *job = batch->jobs[i];
      ssimd_image_clear(&job->img1);
      ssimd_image_clear(&job->img2);
      job->score = scores[i];
      job->channel_scores = malloc(key->channels * sizeof(double));
      if (job->channel_scores != NULL)
        memcpy(job->channel_scores, channel_scores + i * key->channels,
               key->channels * sizeof(double));
      ssimd_worst_block_find(block_means + i * blocks, map_h, map_w, key->padding, &job->worst);
      job->map_height = map_h;
      job->map_width = map_w;
      if (map != NULL)
        job->map = take_slice(&map, n, i, map_elems);
      if (grad1 != NULL)
        job->grad_img1 = take_slice(&grad1, n, i, plane);
      if (grad2 != NULL)
        job->grad_img2 = take_slice(&grad2, n, i, plane);
      if (job->channel_scores == NULL || (key->want_map && job->map == NULL) ||
          ((key->want_gradient & 1) && job->grad_img1 == NULL) ||
          ((key->want_gradient & 2) && job->grad_img2 == NULL))
        ssimd_job_fail(job, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory for the results", NULL);
      job->compute_ms = seconds * 1e3;
      job->computed_ns = end;
      pixels += (uint64_t)key->height * key->width;
    }
    ssimd_metrics_observe_batch(w->metrics, seconds, n, pixels);
  }
  free(scores);
  free(channel_scores);
  free(block_means);
  free(map);
  free(grad1);
  free(grad2);
}

static void *worker_main(void *arg) {
  struct ssimd_worker *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (w->pending == NULL && !w->stop)
      pthread_cond_wait(&w->cond, &w->lock);
    if (w->pending == NULL)
      break; /* stopping, nothing left */
    struct ssimd_batch *batch = w->pending;
    w->pending = NULL;
    pthread_mutex_unlock(&w->lock);
    compute_batch(w, batch);
    w->done(w->done_ctx, batch);
    pthread_mutex_lock(&w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int ssimd_worker_start(ssim_engine_t *engine, struct ssimd_metrics *metrics,
                       ssimd_worker_done_fn done, void *done_ctx, struct ssimd_worker **out) {
  struct ssimd_worker *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return -1;
  w->engine = engine;
  w->metrics = metrics;
  w->done = done;
  w->done_ctx = done_ctx;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
    return -1;
  }
  *out = w;
  return 0;
}

void ssimd_worker_run(struct ssimd_worker *w, struct ssimd_batch *batch) {
  pthread_mutex_lock(&w->lock);
  w->pending = batch;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

void ssimd_worker_stop(struct ssimd_worker *w) {
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->lock);
  w->stop = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  ssim_engine_destroy(w->engine);
  free(w->stage1);
  free(w->stage2);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cond);
  free(w);
}
