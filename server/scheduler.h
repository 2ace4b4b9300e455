/*
 * scheduler.h: the scheduler of DESIGN.md. A libuv loop thread owns the bounded queue, groups
 * decoded pairs into batches (batcher.h), feeds the one engine worker (worker.h), enforces
 * each request's deadline and hands answers back to the HTTP layer. A pool of threads decodes
 * images and encodes answers.
 *
 * Thread rules: ssimd_scheduler_admit, _release, _submit, _admitted and _ready may be called
 * from any thread; _start and _stop from the main thread. Every other thread reaches the loop
 * only through its completion list (a mutex-protected list plus uv_async_send).
 */
#ifndef SSIMD_SCHEDULER_H
#define SSIMD_SCHEDULER_H

#include "ssim.h"

#include <stddef.h>
#include <stdint.h>

struct ssimd_job;
struct ssimd_metrics;
struct ssimd_scheduler;

struct ssimd_scheduler_config {
  size_t max_batch;
  uint64_t batch_window_us;
  size_t queue_limit;       /* pairs admitted and not yet finished */
  double request_timeout_s; /* from submit to answer */
  size_t pool_threads;      /* decode/encode threads */
};

/*
 * Start the pool, the engine worker (which takes `engine` and destroys it at stop) and the loop
 * thread. `metrics` is borrowed and must outlive the scheduler. Returns 0 with *out set, or -1
 * with `detail` set (the engine is then destroyed too).
 */
int ssimd_scheduler_start(const struct ssimd_scheduler_config *config, ssim_engine_t *engine,
                          struct ssimd_metrics *metrics, struct ssimd_scheduler **out, char *detail,
                          size_t detail_size);

/* Reserve room for `pairs` pairs. Returns 0, or -1 when the queue is full (answer 429). */
int ssimd_scheduler_admit(struct ssimd_scheduler *scheduler, size_t pairs);

/* Give back a reservation that will not be submitted. */
void ssimd_scheduler_release(struct ssimd_scheduler *scheduler, size_t pairs);

/* Pairs admitted and not yet finished. */
size_t ssimd_scheduler_admitted(const struct ssimd_scheduler *scheduler);

/* Whether another pair would be admitted now. */
int ssimd_scheduler_ready(const struct ssimd_scheduler *scheduler);

/*
 * Hand an admitted job (one pair; its request suspended) to the loop, which owns it from now
 * on and answers its request exactly once: with the result, an error, or 503 at its deadline.
 */
void ssimd_scheduler_submit(struct ssimd_scheduler *scheduler, struct ssimd_job *job);

/*
 * Stop after every submitted job has been answered and has come back from the pool and the
 * worker; then join the threads and destroy the engine. Call once the HTTP server has no
 * suspended request left. NULL is allowed.
 */
void ssimd_scheduler_stop(struct ssimd_scheduler *scheduler);

#endif /* SSIMD_SCHEDULER_H */
