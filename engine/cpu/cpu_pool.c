/*
 * cpu_pool.c: the persistent worker threads of the CPU backend (see cpu_pool.h).
 *
 * Tasks are few and large (a strip of one image plane each), so one mutex guards the whole job:
 * claiming a task and reporting it done are the only points where workers meet.
 */
#define _POSIX_C_SOURCE 200809L

#include "cpu_pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

struct pool_thread {
  struct ssim__cpu_pool *pool;
  unsigned worker;
  pthread_t thread;
};

struct ssim__cpu_pool {
  pthread_mutex_t lock;
  pthread_cond_t wake;     /* workers wait here for a task or for stop */
  pthread_cond_t finished; /* the caller waits here for the last task of a job */
  /* The job in progress, all guarded by `lock`. task_count is 0 between jobs. */
  ssim__cpu_task_fn fn;
  void *context;
  size_t task_count;
  size_t next_task;
  size_t tasks_done;
  int stop;
  unsigned workers;            /* the caller included */
  unsigned threads_started;    /* entries of `threads` that hold a running thread */
  struct pool_thread *threads; /* workers - 1 entries */
};

static void *pool_thread_main(void *arg) {
  struct pool_thread *self = arg;
  struct ssim__cpu_pool *pool = self->pool;
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    while (!pool->stop && pool->next_task >= pool->task_count)
      pthread_cond_wait(&pool->wake, &pool->lock);
    if (pool->stop)
      break;
    size_t task = pool->next_task++;
    ssim__cpu_task_fn fn = pool->fn;
    void *context = pool->context;
    pthread_mutex_unlock(&pool->lock);
    fn(context, task, self->worker);
    pthread_mutex_lock(&pool->lock);
    if (++pool->tasks_done == pool->task_count)
      pthread_cond_signal(&pool->finished);
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

static void pool_stop_threads(struct ssim__cpu_pool *pool) {
  pthread_mutex_lock(&pool->lock);
  pool->stop = 1;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (unsigned i = 0; i < pool->threads_started; i++)
    pthread_join(pool->threads[i].thread, NULL);
  pool->threads_started = 0;
}

int ssim__cpu_pool_create(unsigned workers, struct ssim__cpu_pool **out, char *detail) {
  *out = NULL;
  if (workers == 0)
    workers = 1;
  struct ssim__cpu_pool *pool = calloc(1, sizeof(*pool));
  struct pool_thread *threads = workers > 1 ? calloc(workers - 1, sizeof(*threads)) : NULL;
  if (pool == NULL || (workers > 1 && threads == NULL)) {
    free(pool);
    free(threads);
    snprintf(detail, SSIM__DETAIL_MAX, "cannot allocate a pool of %u workers", workers);
    return SSIM_ENOMEM;
  }
  if (pthread_mutex_init(&pool->lock, NULL) != 0) {
    free(pool);
    free(threads);
    snprintf(detail, SSIM__DETAIL_MAX, "pthread_mutex_init failed");
    return SSIM_ETHREAD;
  }
  if (pthread_cond_init(&pool->wake, NULL) != 0) {
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    free(threads);
    snprintf(detail, SSIM__DETAIL_MAX, "pthread_cond_init failed");
    return SSIM_ETHREAD;
  }
  if (pthread_cond_init(&pool->finished, NULL) != 0) {
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    free(threads);
    snprintf(detail, SSIM__DETAIL_MAX, "pthread_cond_init failed");
    return SSIM_ETHREAD;
  }
  pool->workers = workers;
  pool->threads = threads;

  /* Threads inherit the creator's signal mask: start them with every signal blocked so that
   * the application's signal handling (e.g. SIGTERM to drain) never lands on a worker. */
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int err = 0;
  for (unsigned i = 0; i + 1 < workers; i++) {
    threads[i].pool = pool;
    threads[i].worker = i + 1;
    err = pthread_create(&threads[i].thread, NULL, pool_thread_main, &threads[i]);
    if (err != 0)
      break;
    pool->threads_started++;
  }
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (err != 0) {
    snprintf(detail, SSIM__DETAIL_MAX, "pthread_create failed after %u of %u threads: %s",
             pool->threads_started, workers - 1, strerror(err));
    ssim__cpu_pool_destroy(pool);
    return SSIM_ETHREAD;
  }
  *out = pool;
  return 0;
}

void ssim__cpu_pool_destroy(struct ssim__cpu_pool *pool) {
  if (pool == NULL)
    return;
  pool_stop_threads(pool);
  pthread_cond_destroy(&pool->finished);
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->lock);
  free(pool->threads);
  free(pool);
}

unsigned ssim__cpu_pool_size(const struct ssim__cpu_pool *pool) {
  return pool->workers;
}

void ssim__cpu_pool_run(struct ssim__cpu_pool *pool, size_t task_count, ssim__cpu_task_fn fn,
                        void *context) {
  if (pool->workers == 1 || task_count <= 1) {
    for (size_t task = 0; task < task_count; task++)
      fn(context, task, 0);
    return;
  }
  pthread_mutex_lock(&pool->lock);
  pool->fn = fn;
  pool->context = context;
  pool->task_count = task_count;
  pool->next_task = 0;
  pool->tasks_done = 0;
  pthread_cond_broadcast(&pool->wake);
  while (pool->next_task < pool->task_count) {
    size_t task = pool->next_task++;
    pthread_mutex_unlock(&pool->lock);
    fn(context, task, 0);
    pthread_mutex_lock(&pool->lock);
    pool->tasks_done++;
  }
  while (pool->tasks_done < pool->task_count)
    pthread_cond_wait(&pool->finished, &pool->lock);
  /* No task left to claim: a worker that wakes late goes back to sleep. */
  pool->task_count = 0;
  pool->next_task = 0;
  pool->fn = NULL;
  pool->context = NULL;
  pthread_mutex_unlock(&pool->lock);
}
