/*
 * batcher.h: the scheduler's grouping and window logic, kept pure (no threads, no clock, no
 * allocation but its groups) so that it can be tested on its own.
 *
 * Items of the same key (shape, dtype and options) form a group; a batch is taken from one
 * group. Thread rules: a batcher belongs to one thread (the scheduler's loop thread).
 */
#ifndef SSIMD_BATCHER_H
#define SSIMD_BATCHER_H

#include "ssim.h"

#include <stddef.h>
#include <stdint.h>

/* What makes pairs computable in one engine call with the same outputs. */
struct ssimd_batch_key {
  size_t channels, height, width;
  ssim_dtype dtype;
  ssim_padding padding;
  int want_map;      /* the map is needed */
  int want_gradient; /* ssimd_gradient bits: which gradients are needed */
};

struct ssimd_batch_group;

/* Embedded in the caller's struct; the batcher links it but never frees it. */
struct ssimd_batch_item {
  struct ssimd_batch_key key;
  uint64_t enqueued_us;
  struct ssimd_batch_item *prev, *next;
  struct ssimd_batch_group *group; /* NULL when not in a batcher */
};

struct ssimd_batcher {
  size_t max_batch;
  uint64_t window_us;
  struct ssimd_batch_group *groups; /* unordered; a handful at a time */
  size_t count;                     /* items in all groups */
};

/* An empty batcher. max_batch >= 1. */
void ssimd_batcher_init(struct ssimd_batcher *batcher, size_t max_batch, uint64_t window_us);

/* Free the groups. The items are the caller's; the batcher must be empty or they are forgotten. */
void ssimd_batcher_destroy(struct ssimd_batcher *batcher);

/* Queue `item` (its key set) at time `now_us`. Returns 0, or -1 when out of memory. */
int ssimd_batcher_push(struct ssimd_batcher *batcher, struct ssimd_batch_item *item,
                       uint64_t now_us);

/* Take `item` out before its batch is formed (its deadline passed). */
void ssimd_batcher_remove(struct ssimd_batcher *batcher, struct ssimd_batch_item *item);

/*
 * Decide, for an idle worker, what to compute next. Fills `out` (room for max_batch items) with
 * one batch, oldest first, and returns its size; or returns 0 and sets *wake_at_us to when to
 * ask again (UINT64_MAX: only when something is pushed).
 *
 * The rule: a full group goes at once (the one with the oldest item first); otherwise the group
 * with the oldest item goes when that item has waited window_us, or at once when
 * `more_coming` is 0 (no pair is being decoded, so waiting could not fill the batch).
 */
size_t ssimd_batcher_take(struct ssimd_batcher *batcher, uint64_t now_us, int more_coming,
                          struct ssimd_batch_item **out, uint64_t *wake_at_us);

#endif /* SSIMD_BATCHER_H */
