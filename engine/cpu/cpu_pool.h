/*
 * cpu_pool.h: the persistent worker threads of the CPU backend. Private to engine/cpu/.
 *
 * A pool runs one job at a time: a number of independent tasks, each a call of one function
 * with the task's index and the index of the worker that runs it (0 is the calling thread,
 * 1 .. size-1 the pool's threads), so that a task can use per-worker scratch memory without
 * locking. Which worker runs which task is not fixed; a task's result must not depend on it.
 * Thread rules: the pool is created, used and destroyed by one thread at a time.
 */
#ifndef SSIM_CPU_POOL_H
#define SSIM_CPU_POOL_H

#include <stddef.h>

struct ssim__cpu_pool;

/** One task of a job: `context` is the job's, `task` in [0, task_count), `worker` in [0, size). */
typedef void (*ssim__cpu_task_fn)(void *context, size_t task, unsigned worker);

/**
 * Create a pool of `workers` workers (at least 1), the caller being one of them, so that
 * workers - 1 threads are started; they block every signal, leaving signals to the
 * application's threads. On success *out is owned by the caller and released with
 * ssim__cpu_pool_destroy. Returns 0, SSIM_ENOMEM or SSIM_ETHREAD, with a sentence in `detail`
 * (SSIM__DETAIL_MAX bytes).
 */
int ssim__cpu_pool_create(unsigned workers, struct ssim__cpu_pool **out, char *detail);

/** Stop and join the threads, and free the pool. NULL is allowed. */
void ssim__cpu_pool_destroy(struct ssim__cpu_pool *pool);

/** Number of workers, the caller included. */
unsigned ssim__cpu_pool_size(const struct ssim__cpu_pool *pool);

/** Run tasks 0 .. task_count-1 of `fn` on the workers, the calling thread taking part, and
 * return when all have finished. */
void ssim__cpu_pool_run(struct ssim__cpu_pool *pool, size_t task_count, ssim__cpu_task_fn fn,
                        void *context);

#endif /* SSIM_CPU_POOL_H */
