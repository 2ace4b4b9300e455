/*
 * worker.h: the engine worker, the one thread that owns the engine and makes one ssim_compute
 * call per batch, with the batch's pairs packed contiguously.
 *
 * Thread rules: ssimd_worker_run is called by the scheduler's loop thread only when the worker is
 * idle (at most one batch in flight); the worker reports through the `done` callback, from its
 * own thread; that callback is the one crossing point from the worker to the loop.
 */
#ifndef SSIMD_WORKER_H
#define SSIMD_WORKER_H

#include "batcher.h"
#include "ssim.h"

#include <stddef.h>

struct ssimd_job;
struct ssimd_metrics;
struct ssimd_worker;

/* A batch: jobs of one key. Made by the loop, filled by the worker, freed by the loop. */
struct ssimd_batch {
  struct ssimd_batch_key key;
  size_t count;
  struct ssimd_batch *next; /* the scheduler's completion list */
  struct ssimd_job *jobs[]; /* count jobs */
};

typedef void (*ssimd_worker_done_fn)(void *ctx, struct ssimd_batch *batch);

/*
 * Start the worker thread; it takes `engine` (destroyed by ssimd_worker_stop). `done` is called
 * on the worker thread with each computed batch. Returns 0, or -1 (engine not taken then).
 */
int ssimd_worker_start(ssim_engine_t *engine, struct ssimd_metrics *metrics,
                       ssimd_worker_done_fn done, void *done_ctx, struct ssimd_worker **out);

/* Hand the idle worker a batch. */
void ssimd_worker_run(struct ssimd_worker *worker, struct ssimd_batch *batch);

/* Finish the batch in flight, if any, then stop and join the thread, destroy the engine. */
void ssimd_worker_stop(struct ssimd_worker *worker);

#endif /* SSIMD_WORKER_H */
