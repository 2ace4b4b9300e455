/*
 * scheduler.c: the loop thread, its completion list, deadlines, and the decode/encode pool.
 *
 * Ownership: struct ssimd_scheduler is created and destroyed by the main thread; its `inbox`
 * fields are shared under `lock`; every other field below "loop thread only" belongs to the loop
 * thread while it runs. A job belongs to the loop except while a pool thread or the worker holds
 * it (stage DECODING, ENCODING, COMPUTING); those give it back through the completion list.
 */
#include "scheduler.h"

#include "http.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct ssimd_scheduler {
  struct ssimd_scheduler_config config;
  struct ssimd_metrics *metrics;
  atomic_size_t admitted;
  GThreadPool *pool;
  struct ssimd_worker *worker;
  pthread_t thread;

  /* The completion list: the one way into the loop from other threads. */
  pthread_mutex_t lock;
  struct ssimd_job *inbox_head, *inbox_tail;
  struct ssimd_batch *done_head, *done_tail;
  int stop_requested;

  /* Loop thread only. */
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t batch_timer;
  uv_timer_t deadline_timer;
  struct ssimd_batcher batcher;
  struct ssimd_batch_item **take;          /* room for max_batch items */
  struct ssimd_job *live_head, *live_tail; /* unanswered jobs, earliest deadline first */
  size_t decoding;                         /* jobs in the decode stage */
  size_t pipeline;                         /* jobs submitted and not yet freed */
  int worker_busy;
  int stopping;
  int closed;
};

#define JOB_OF_ITEM(item_ptr)                                                                      \
  ((struct ssimd_job *)(void *)((char *)(item_ptr)-offsetof(struct ssimd_job, item)))

void ssimd_job_fail(struct ssimd_job *job, ssimd_error error, const char *message,
                    const char *field) {
  if (job->error != SSIMD_ERROR_COUNT)
    return;
  job->error = error;
  snprintf(job->message, sizeof(job->message), "%s",
           message != NULL ? message : ssimd_error_message(error));
  job->field = field;
}

int ssimd_scheduler_admit(struct ssimd_scheduler *s, size_t pairs) {
  size_t current = atomic_load(&s->admitted);
  do {
    if (current + pairs > s->config.queue_limit)
      return -1;
  } while (!atomic_compare_exchange_weak(&s->admitted, &current, current + pairs));
  return 0;
}

void ssimd_scheduler_release(struct ssimd_scheduler *s, size_t pairs) {
  atomic_fetch_sub(&s->admitted, pairs);
}

size_t ssimd_scheduler_admitted(const struct ssimd_scheduler *s) {
  return atomic_load(&((struct ssimd_scheduler *)s)->admitted);
}

int ssimd_scheduler_ready(const struct ssimd_scheduler *s) {
  return ssimd_scheduler_admitted(s) < s->config.queue_limit;
}

/* Any thread: give a job to the loop. */
static void inbox_post(struct ssimd_scheduler *s, struct ssimd_job *job) {
  job->inbox_next = NULL;
  pthread_mutex_lock(&s->lock);
  if (s->inbox_tail != NULL)
    s->inbox_tail->inbox_next = job;
  else
    s->inbox_head = job;
  s->inbox_tail = job;
  pthread_mutex_unlock(&s->lock);
  uv_async_send(&s->wake);
}

void ssimd_scheduler_submit(struct ssimd_scheduler *s, struct ssimd_job *job) {
  job->stage = SSIMD_JOB_NEW;
  inbox_post(s, job);
}

/* Worker thread: a computed batch comes back. */
static void on_batch_done(void *ctx, struct ssimd_batch *batch) {
  struct ssimd_scheduler *s = ctx;
  batch->next = NULL;
  pthread_mutex_lock(&s->lock);
  if (s->done_tail != NULL)
    s->done_tail->next = batch;
  else
    s->done_head = batch;
  s->done_tail = batch;
  pthread_mutex_unlock(&s->lock);
  uv_async_send(&s->wake);
}

/* Pool thread: run the job's stage and hand it back. */
static void pool_run(gpointer data, gpointer user_data) {
  struct ssimd_job *job = data;
  struct ssimd_scheduler *s = user_data;
  if (job->stage == SSIMD_JOB_DECODING) {
    job->ops->decode(job);
    job->decoded_ns = ssimd_now_ns();
  } else {
    job->ops->encode(job);
  }
  inbox_post(s, job);
}

static void live_remove(struct ssimd_scheduler *s, struct ssimd_job *job) {
  if (job->live_prev == NULL && s->live_head != job)
    return; /* not in the list */
  if (job->live_prev != NULL)
    job->live_prev->live_next = job->live_next;
  else
    s->live_head = job->live_next;
  if (job->live_next != NULL)
    job->live_next->live_prev = job->live_prev;
  else
    s->live_tail = job->live_prev;
  job->live_prev = job->live_next = NULL;
}

static void live_append(struct ssimd_scheduler *s, struct ssimd_job *job) {
  job->live_next = NULL;
  job->live_prev = s->live_tail;
  if (s->live_tail != NULL)
    s->live_tail->live_next = job;
  else
    s->live_head = job;
  s->live_tail = job;
}

/* Answer the job's request now (taking `answer`); later results of the job are dropped. */
static void job_answer(struct ssimd_scheduler *s, struct ssimd_job *job,
                       struct ssimd_answer *answer) {
  if (job->answered) {
    ssimd_answer_free(answer);
    return;
  }
  job->answered = 1;
  live_remove(s, job);
  struct ssimd_request *req = job->req;
  job->req = NULL;
  ssimd_request_resume(req, answer);
}

static void job_answer_error(struct ssimd_scheduler *s, struct ssimd_job *job) {
  job_answer(s, job, ssimd_answer_error(job->error, job->message, job->field));
}

static void job_free(struct ssimd_scheduler *s, struct ssimd_job *job) {
  if (!job->answered) {
    /* Every path answers before freeing; this guards the exactly-once promise regardless. */
    ssimd_job_fail(job, SSIMD_ERROR_INTERNAL, "a job ended without an answer", NULL);
    job_answer_error(s, job);
  }
  live_remove(s, job);
  s->pipeline--;
  job->ops->free(job);
  atomic_fetch_sub(&s->admitted, 1);
}

static void pool_push(struct ssimd_scheduler *s, struct ssimd_job *job, ssimd_job_stage stage) {
  job->stage = stage;
  GError *error = NULL;
  if (!g_thread_pool_push(s->pool, job, &error)) {
    /* Only when a new pool thread cannot be started; the job goes back as failed. */
    ssimd_job_fail(job, SSIMD_ERROR_INTERNAL, error->message, NULL);
    g_error_free(error);
    inbox_post(s, job);
  }
}

static void handle_job(struct ssimd_scheduler *s, struct ssimd_job *job) {
  switch (job->stage) {
  case SSIMD_JOB_NEW:
    s->pipeline++;
    job->deadline_ns = ssimd_now_ns() + (uint64_t)(s->config.request_timeout_s * 1e9);
    live_append(s, job);
    s->decoding++;
    pool_push(s, job, SSIMD_JOB_DECODING);
    return;
  case SSIMD_JOB_DECODING:
    s->decoding--;
    if (job->answered) {
      job_free(s, job);
    } else if (job->error != SSIMD_ERROR_COUNT) {
      job_answer_error(s, job);
      job_free(s, job);
    } else if (ssimd_batcher_push(&s->batcher, &job->item, ssimd_now_ns() / 1000) != 0) {
      ssimd_job_fail(job, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
      job_answer_error(s, job);
      job_free(s, job);
    } else {
      job->stage = SSIMD_JOB_QUEUED;
    }
    return;
  case SSIMD_JOB_ENCODING:
    if (job->answer == NULL && job->error == SSIMD_ERROR_COUNT)
      ssimd_job_fail(job, SSIMD_ERROR_INTERNAL, "the answer could not be encoded", NULL);
    if (job->answer != NULL) {
      job_answer(s, job, job->answer);
      job->answer = NULL;
    } else {
      job_answer_error(s, job);
    }
    job_free(s, job);
    return;
  default:
    ssimd_log_error("scheduler: job in unexpected stage %d", (int)job->stage);
    return;
  }
}

static void handle_batch(struct ssimd_scheduler *s, struct ssimd_batch *batch) {
  s->worker_busy = 0;
  for (size_t i = 0; i < batch->count; i++) {
    struct ssimd_job *job = batch->jobs[i];
    if (job->answered) {
      job_free(s, job);
    } else if (job->error != SSIMD_ERROR_COUNT) {
      job_answer_error(s, job);
      job_free(s, job);
    } else {
      pool_push(s, job, SSIMD_JOB_ENCODING);
    }
  }
  free(batch);
}

static void on_batch_timer(uv_timer_t *timer);

/* Give the idle worker its next batch, or arm the window timer. */
static void schedule(struct ssimd_scheduler *s) {
  if (!s->worker_busy && s->batcher.count > 0) {
    uint64_t now_ns = ssimd_now_ns();
    uint64_t wake_at_us = UINT64_MAX;
    size_t n =
        ssimd_batcher_take(&s->batcher, now_ns / 1000, s->decoding > 0, s->take, &wake_at_us);
    if (n > 0) {
      struct ssimd_batch *batch = malloc(sizeof(*batch) + n * sizeof(batch->jobs[0]));
      if (batch == NULL) {
        for (size_t i = 0; i < n; i++) {
          struct ssimd_job *job = JOB_OF_ITEM(s->take[i]);
          ssimd_job_fail(job, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
          job_answer_error(s, job);
          job_free(s, job);
        }
      } else {
        batch->key = s->take[0]->key;
        batch->count = n;
        for (size_t i = 0; i < n; i++) {
          struct ssimd_job *job = JOB_OF_ITEM(s->take[i]);
          job->stage = SSIMD_JOB_COMPUTING;
          job->dispatched_ns = now_ns;
          ssimd_metrics_observe_queue_wait(s->metrics, (double)(now_ns - job->decoded_ns) / 1e9);
          batch->jobs[i] = job;
        }
        s->worker_busy = 1;
        uv_timer_stop(&s->batch_timer);
        ssimd_worker_run(s->worker, batch);
      }
    } else if (wake_at_us != UINT64_MAX) {
      uint64_t now_us = now_ns / 1000;
      uint64_t wait_ms = wake_at_us > now_us ? (wake_at_us - now_us + 999) / 1000 : 0;
      uv_timer_start(&s->batch_timer, on_batch_timer, wait_ms, 0);
    }
  }
  ssimd_metrics_set_queue_depth(s->metrics, s->batcher.count);
}

static void on_batch_timer(uv_timer_t *timer) {
  schedule(timer->data);
}

static void on_deadline_timer(uv_timer_t *timer);

static void arm_deadline(struct ssimd_scheduler *s) {
  if (s->live_head == NULL) {
    uv_timer_stop(&s->deadline_timer);
    return;
  }
  uint64_t now = ssimd_now_ns();
  uint64_t due = s->live_head->deadline_ns;
  uint64_t wait_ms = due > now ? (due - now + 999999) / 1000000 : 0;
  uv_timer_start(&s->deadline_timer, on_deadline_timer, wait_ms, 0);
}

/* Answer every job whose deadline has passed with 503; a queued one is dropped at once, one in
 * the pool or the worker when it comes back. */
static void on_deadline_timer(uv_timer_t *timer) {
  struct ssimd_scheduler *s = timer->data;
  uint64_t now = ssimd_now_ns();
  while (s->live_head != NULL && s->live_head->deadline_ns <= now) {
    struct ssimd_job *job = s->live_head;
    /* The job's own fields may be in another thread's hands: answer without touching them. */
    job_answer(s, job, ssimd_answer_error(SSIMD_ERROR_TIMEOUT, NULL, NULL));
    if (job->stage == SSIMD_JOB_QUEUED) {
      ssimd_batcher_remove(&s->batcher, &job->item);
      job_free(s, job);
    }
  }
  arm_deadline(s);
  schedule(s);
}

static void maybe_close(struct ssimd_scheduler *s) {
  if (!s->stopping || s->pipeline > 0 || s->closed)
    return;
  s->closed = 1;
  uv_close((uv_handle_t *)&s->wake, NULL);
  uv_close((uv_handle_t *)&s->batch_timer, NULL);
  uv_close((uv_handle_t *)&s->deadline_timer, NULL);
}

static void on_wake(uv_async_t *async) {
  struct ssimd_scheduler *s = async->data;
  /* Take the whole list at once: uv_async_send coalesces, so one callback may stand for many
   * posts, and a post after the swap triggers another callback. */
  pthread_mutex_lock(&s->lock);
  struct ssimd_job *jobs = s->inbox_head;
  struct ssimd_batch *batches = s->done_head;
  s->inbox_head = s->inbox_tail = NULL;
  s->done_head = s->done_tail = NULL;
  if (s->stop_requested)
    s->stopping = 1;
  pthread_mutex_unlock(&s->lock);

  while (batches != NULL) {
    struct ssimd_batch *next = batches->next;
    handle_batch(s, batches);
    batches = next;
  }
  while (jobs != NULL) {
    struct ssimd_job *next = jobs->inbox_next;
    handle_job(s, jobs);
    jobs = next;
  }
  schedule(s);
  arm_deadline(s);
  maybe_close(s);
}

static void *loop_main(void *arg) {
  struct ssimd_scheduler *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  return NULL;
}

int ssimd_scheduler_start(const struct ssimd_scheduler_config *config, ssim_engine_t *engine,
                          struct ssimd_metrics *metrics, struct ssimd_scheduler **out, char *detail,
                          size_t detail_size) {
  *out = NULL;
  struct ssimd_scheduler *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    ssim_engine_destroy(engine);
    snprintf(detail, detail_size, "out of memory");
    return -1;
  }
  s->config = *config;
  s->metrics = metrics;
  s->take = calloc(config->max_batch, sizeof(*s->take));
  ssimd_batcher_init(&s->batcher, config->max_batch, config->batch_window_us);
  pthread_mutex_init(&s->lock, NULL);
  GError *error = NULL;
  if (s->take == NULL || uv_loop_init(&s->loop) != 0) {
    snprintf(detail, detail_size, "cannot start the scheduler loop");
    free(s->take);
    free(s);
    ssim_engine_destroy(engine);
    return -1;
  }
  uv_async_init(&s->loop, &s->wake, on_wake);
  uv_timer_init(&s->loop, &s->batch_timer);
  uv_timer_init(&s->loop, &s->deadline_timer);
  s->wake.data = s->batch_timer.data = s->deadline_timer.data = s;
  s->pool = g_thread_pool_new(pool_run, s, (gint)config->pool_threads, TRUE, &error);
  if (s->pool == NULL) {
    snprintf(detail, detail_size, "cannot start %zu decode threads: %s", config->pool_threads,
             error->message);
    g_error_free(error);
    ssim_engine_destroy(engine);
    goto fail_loop;
  }
  if (ssimd_worker_start(engine, metrics, on_batch_done, s, &s->worker) != 0) {
    snprintf(detail, detail_size, "cannot start the engine worker");
    ssim_engine_destroy(engine);
    g_thread_pool_free(s->pool, FALSE, TRUE);
    goto fail_loop;
  }
  if (pthread_create(&s->thread, NULL, loop_main, s) != 0) {
    snprintf(detail, detail_size, "cannot start the scheduler thread");
    ssimd_worker_stop(s->worker);
    g_thread_pool_free(s->pool, FALSE, TRUE);
    goto fail_loop;
  }
  *out = s;
  return 0;

fail_loop:
  uv_close((uv_handle_t *)&s->wake, NULL);
  uv_close((uv_handle_t *)&s->batch_timer, NULL);
  uv_close((uv_handle_t *)&s->deadline_timer, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  pthread_mutex_destroy(&s->lock);
  free(s->take);
  free(s);
  return -1;
}

void ssimd_scheduler_stop(struct ssimd_scheduler *s) {
  if (s == NULL)
    return;
  pthread_mutex_lock(&s->lock);
  s->stop_requested = 1;
  pthread_mutex_unlock(&s->lock);
  uv_async_send(&s->wake);
  pthread_join(s->thread, NULL);
  /* The pipeline is empty: the worker is idle and the pool has nothing queued. */
  ssimd_worker_stop(s->worker);
  g_thread_pool_free(s->pool, FALSE, TRUE);
  uv_loop_close(&s->loop);
  ssimd_batcher_destroy(&s->batcher);
  pthread_mutex_destroy(&s->lock);
  free(s->take);
  free(s);
}
