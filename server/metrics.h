/*
 * metrics.h: the daemon's Prometheus metrics.
 *
 * Thread rules: created by main before any thread starts and destroyed after they stop; every
 * observe/set function is lock-free (relaxed atomics) and safe from any thread. A scrape may
 * see one counter updated and a neighbour not yet: Prometheus tolerates that.
 */
#ifndef SSIMD_METRICS_H
#define SSIMD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct ssimd_metrics;

/*
 * Create the metrics for the endpoints named in `endpoints` (borrowed; static strings that
 * outlive the metrics), plus "unmatched" for requests no route took. Returns NULL when out of
 * memory. Free with ssimd_metrics_destroy.
 */
struct ssimd_metrics *ssimd_metrics_create(const char *const *endpoints, size_t count,
                                           const char *version, const char *backend);
void ssimd_metrics_destroy(struct ssimd_metrics *metrics);

/* One finished request: ssimd_requests_total and ssimd_request_duration_seconds. */
void ssimd_metrics_observe_request(struct ssimd_metrics *metrics, const char *endpoint,
                                   unsigned status, double seconds);
/* A pair's wait between the end of its decode and the start of its engine call. */
void ssimd_metrics_observe_queue_wait(struct ssimd_metrics *metrics, double seconds);
/* One engine call: its duration, pairs and pixels (width*height per pair, summed). */
void ssimd_metrics_observe_batch(struct ssimd_metrics *metrics, double seconds, size_t pairs,
                                 uint64_t pixels);
/* Pairs decoded and waiting for the engine. */
void ssimd_metrics_set_queue_depth(struct ssimd_metrics *metrics, size_t depth);

/*
 * The text exposition format (version 0.0.4). Returns a malloc'ed string the caller frees, its
 * length in *len; NULL when out of memory. `inflight` is the requests being served now.
 */
char *ssimd_metrics_render(struct ssimd_metrics *metrics, size_t inflight, size_t *len);

#endif /* SSIMD_METRICS_H */
