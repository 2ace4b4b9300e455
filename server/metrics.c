/*
 * metrics.c: counters and fixed-bucket histograms on relaxed atomics, rendered on scrape.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENDPOINT_MAX 16
#define BUCKET_MAX 16

/* The statuses the daemon sends; anything else is counted under "other". */
static const unsigned status_list[] = {200, 400, 401, 404, 405, 413, 415,
                                       422, 429, 499, 500, 503, 504};
#define STATUS_COUNT (sizeof(status_list) / sizeof(status_list[0]))

static const double latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define LATENCY_BUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))
static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
#define BATCH_BUCKETS (sizeof(batch_buckets) / sizeof(batch_buckets[0]))

/* Counts per bucket (not cumulative; summed on render), and the sum in `scale` units. */
struct histogram {
  const double *bounds;
  size_t bound_count;
  double scale; /* the sum is kept as an integer number of 1/scale units */
  atomic_uint_fast64_t counts[BUCKET_MAX + 1];
  atomic_uint_fast64_t sum;
};

struct ssimd_metrics {
  const char *endpoints[ENDPOINT_MAX];
  size_t endpoint_count;
  const char *version;
  const char *backend;
  atomic_uint_fast64_t requests[ENDPOINT_MAX][STATUS_COUNT + 1];
  struct histogram request_duration[ENDPOINT_MAX];
  struct histogram queue_wait;
  struct histogram engine_seconds;
  struct histogram batch_size;
  atomic_uint_fast64_t pixels;
  atomic_size_t queue_depth;
};

static void histogram_init(struct histogram *h, const double *bounds, size_t count, double scale) {
  h->bounds = bounds;
  h->bound_count = count;
  h->scale = scale;
}

static void histogram_observe(struct histogram *h, double value) {
  size_t i = 0;
  while (i < h->bound_count && value > h->bounds[i])
    i++;
  atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
  if (value > 0)
    atomic_fetch_add_explicit(&h->sum, (uint_fast64_t)(value * h->scale + 0.5),
                              memory_order_relaxed);
}

struct ssimd_metrics *ssimd_metrics_create(const char *const *endpoints, size_t count,
                                           const char *version, const char *backend) {
  struct ssimd_metrics *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  for (size_t i = 0; i < count && m->endpoint_count + 1 < ENDPOINT_MAX; i++)
    m->endpoints[m->endpoint_count++] = endpoints[i];
  m->endpoints[m->endpoint_count++] = "unmatched";
  m->version = version;
  m->backend = backend;
  for (size_t i = 0; i < ENDPOINT_MAX; i++)
    histogram_init(&m->request_duration[i], latency_buckets, LATENCY_BUCKETS, 1e9);
  histogram_init(&m->queue_wait, latency_buckets, LATENCY_BUCKETS, 1e9);
  histogram_init(&m->engine_seconds, latency_buckets, LATENCY_BUCKETS, 1e9);
  histogram_init(&m->batch_size, batch_buckets, BATCH_BUCKETS, 1);
  return m;
}

void ssimd_metrics_destroy(struct ssimd_metrics *metrics) {
  free(metrics);
}

static size_t endpoint_index(const struct ssimd_metrics *m, const char *endpoint) {
  for (size_t i = 0; i < m->endpoint_count; i++)
    if (strcmp(m->endpoints[i], endpoint) == 0)
      return i;
  return m->endpoint_count - 1; /* "unmatched" */
}

void ssimd_metrics_observe_request(struct ssimd_metrics *metrics, const char *endpoint,
                                   unsigned status, double seconds) {
  size_t e = endpoint_index(metrics, endpoint);
  size_t s = 0;
  while (s < STATUS_COUNT && status_list[s] != status)
    s++;
  atomic_fetch_add_explicit(&metrics->requests[e][s], 1, memory_order_relaxed);
  histogram_observe(&metrics->request_duration[e], seconds);
}

void ssimd_metrics_observe_queue_wait(struct ssimd_metrics *metrics, double seconds) {
  histogram_observe(&metrics->queue_wait, seconds);
}

void ssimd_metrics_observe_batch(struct ssimd_metrics *metrics, double seconds, size_t pairs,
                                 uint64_t pixels) {
  histogram_observe(&metrics->engine_seconds, seconds);
  histogram_observe(&metrics->batch_size, (double)pairs);
  atomic_fetch_add_explicit(&metrics->pixels, pixels, memory_order_relaxed);
}

void ssimd_metrics_set_queue_depth(struct ssimd_metrics *metrics, size_t depth) {
  atomic_store_explicit(&metrics->queue_depth, depth, memory_order_relaxed);
}

/* A growing text buffer; `failed` sticks once an allocation fails. */
struct text {
  char *data;
  size_t len, cap;
  int failed;
};

__attribute__((format(printf, 2, 3))) static void text_printf(struct text *t, const char *fmt,
                                                              ...) {
  if (t->failed)
    return;
  for (;;) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, args);
    va_end(args);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = (t->cap + (size_t)n + 1) * 2;
    char *grown = realloc(t->data, cap);
    if (grown == NULL) {
      t->failed = 1;
      return;
    }
    t->data = grown;
    t->cap = cap;
  }
}

static void histogram_render(struct text *t, const char *name, const char *labels,
                             struct histogram *h) {
  uint64_t cumulative = 0;
  const char *sep = labels[0] != '\0' ? "," : "";
  for (size_t i = 0; i <= h->bound_count; i++) {
    cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    if (i < h->bound_count)
      text_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
                  (unsigned long long)cumulative);
    else
      text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                  (unsigned long long)cumulative);
  }
  double sum = (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / h->scale;
  const char *open = labels[0] != '\0' ? "{" : "";
  const char *close = labels[0] != '\0' ? "}" : "";
  text_printf(t, "%s_sum%s%s%s %.9g\n", name, open, labels, close, sum);
  text_printf(t, "%s_count%s%s%s %llu\n", name, open, labels, close,
              (unsigned long long)cumulative);
}

char *ssimd_metrics_render(struct ssimd_metrics *m, size_t inflight, size_t *len) {
  struct text t = {0};
  text_printf(&t, "# HELP ssimd_requests_total HTTP requests answered, by endpoint and status.\n"
                  "# TYPE ssimd_requests_total counter\n");
  for (size_t e = 0; e < m->endpoint_count; e++)
    for (size_t s = 0; s <= STATUS_COUNT; s++) {
      uint64_t n = atomic_load_explicit(&m->requests[e][s], memory_order_relaxed);
      if (n == 0)
        continue;
      char code[16];
      if (s < STATUS_COUNT)
        snprintf(code, sizeof(code), "%u", status_list[s]);
      else
        snprintf(code, sizeof(code), "other");
      text_printf(&t, "ssimd_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", m->endpoints[e],
                  code, (unsigned long long)n);
    }
  text_printf(&t, "# HELP ssimd_request_duration_seconds Time from the request's headers to its "
                  "answer.\n# TYPE ssimd_request_duration_seconds histogram\n");
  for (size_t e = 0; e < m->endpoint_count; e++) {
    char labels[64];
    snprintf(labels, sizeof(labels), "endpoint=\"%s\"", m->endpoints[e]);
    histogram_render(&t, "ssimd_request_duration_seconds", labels, &m->request_duration[e]);
  }
  text_printf(&t, "# HELP ssimd_queue_wait_seconds Time a decoded pair waited for the engine.\n"
                  "# TYPE ssimd_queue_wait_seconds histogram\n");
  histogram_render(&t, "ssimd_queue_wait_seconds", "", &m->queue_wait);
  text_printf(&t, "# HELP ssimd_engine_seconds Duration of one engine call (one batch).\n"
                  "# TYPE ssimd_engine_seconds histogram\n");
  histogram_render(&t, "ssimd_engine_seconds", "", &m->engine_seconds);
  text_printf(&t, "# HELP ssimd_batch_size Pairs per engine call.\n"
                  "# TYPE ssimd_batch_size histogram\n");
  histogram_render(&t, "ssimd_batch_size", "", &m->batch_size);
  text_printf(&t,
              "# HELP ssimd_queue_depth Pairs decoded and waiting for the engine.\n"
              "# TYPE ssimd_queue_depth gauge\nssimd_queue_depth %zu\n"
              "# HELP ssimd_inflight_requests HTTP requests being served.\n"
              "# TYPE ssimd_inflight_requests gauge\nssimd_inflight_requests %zu\n"
              "# HELP ssimd_pixels_total Pixels (width x height) of the pairs compared.\n"
              "# TYPE ssimd_pixels_total counter\nssimd_pixels_total %llu\n"
              "# HELP ssimd_build_info Build version and engine backend in use.\n"
              "# TYPE ssimd_build_info gauge\n"
              "ssimd_build_info{version=\"%s\",backend=\"%s\"} 1\n",
              atomic_load_explicit(&m->queue_depth, memory_order_relaxed), inflight,
              (unsigned long long)atomic_load_explicit(&m->pixels, memory_order_relaxed),
              m->version, m->backend);
  if (t.failed) {
    free(t.data);
    return NULL;
  }
  *len = t.len;
  return t.data;
}
