/*
 * job.h: one image pair on its way through the daemon: decode (pool thread), queue (loop
 * thread), compute (engine worker), encode (pool thread), answer (loop thread).
 *
 * Ownership moves with the stage, and only the scheduler's loop thread moves it: the handler
 * fills a job and submits it (the loop owns it from then on); the loop hands it to a pool
 * thread or the worker, which hand it back through the scheduler's completion list. A job is
 * freed by the loop when it comes back after its answer, including an answer its deadline forced.
 */
#ifndef SSIMD_JOB_H
#define SSIMD_JOB_H

#include "batcher.h"
#include "decode.h"
#include "error.h"
#include "options.h"
#include "response.h"

#include <stdint.h>

struct ssimd_job;
struct ssimd_request;
struct ssimd_answer;

/* What the handler that made a job provides; each runs on a pool thread but `free`. */
struct ssimd_job_ops {
  /* Required. Decode the inputs into img1/img2 and set batch.key, or set `error`. */
  void (*decode)(struct ssimd_job *job);
  /* Required. Turn the results (or `error`) into `answer`. */
  void (*encode)(struct ssimd_job *job);
  /* Required. Free the job and what it still holds; loop thread. */
  void (*free)(struct ssimd_job *job);
};

typedef enum {
  SSIMD_JOB_NEW = 0, /* submitted, not yet seen by the loop */
  SSIMD_JOB_DECODING,
  SSIMD_JOB_DECODED,
  SSIMD_JOB_QUEUED,
  SSIMD_JOB_COMPUTING,
  SSIMD_JOB_COMPUTED,
  SSIMD_JOB_ENCODING,
  SSIMD_JOB_ENCODED
} ssimd_job_stage;

struct ssimd_job {
  /* Set by the handler before submit. */
  const struct ssimd_job_ops *ops;
  struct ssimd_request *req; /* the loop's after submit; NULL once answered */
  struct ssimd_options options;
  uint64_t start_ns; /* the request's first callback, for timing_ms.total */

  /* Decode stage (pool). */
  struct ssimd_image img1, img2;

  /* Results (worker), read by the encode stage. */
  double score;
  double *channel_scores; /* img1.channels values; malloc'ed */
  float *map;             /* channels x map_height x map_width, when options.map; malloc'ed */
  size_t map_height, map_width;
  float *grad_img1, *grad_img2; /* channels x height x width, when asked for; malloc'ed */
  size_t width, height, channels;
  struct ssimd_worst_block worst;
  const char *backend;

  /* Any stage: the first error; SSIMD_ERROR_COUNT while none (the handler sets that). */
  ssimd_error error;
  char message[256];
  const char *field;

  /* Encode stage: the answer, handed to the request by the loop. */
  struct ssimd_answer *answer;

  /* Stage times, CLOCK_MONOTONIC ns. */
  uint64_t decoded_ns, dispatched_ns, computed_ns;
  double decode_ms, compute_ms;

  /* Loop thread only. */
  ssimd_job_stage stage;
  struct ssimd_batch_item item;            /* key set by decode */
  struct ssimd_job *live_prev, *live_next; /* unanswered jobs, oldest (earliest deadline) first */
  uint64_t deadline_ns;
  int answered;
  struct ssimd_job *inbox_next; /* the scheduler's completion list */
};

/* Record an error on a job; the first one wins. `message` NULL: the class's default. */
void ssimd_job_fail(struct ssimd_job *job, ssimd_error error, const char *message,
                    const char *field);

#endif /* SSIMD_JOB_H */
