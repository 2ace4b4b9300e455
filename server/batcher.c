/*
 * batcher.c: groups of same-key items, and the choice of the next batch.
 */
#include "batcher.h"

#include <stdlib.h>
#include <string.h>

struct ssimd_batch_group {
  struct ssimd_batch_key key;
  struct ssimd_batch_item *head, *tail; /* FIFO: head is the oldest */
  size_t count;
  struct ssimd_batch_group *next;
};

static int key_equal(const struct ssimd_batch_key *a, const struct ssimd_batch_key *b) {
  return a->channels == b->channels && a->height == b->height && a->width == b->width &&
         a->dtype == b->dtype && a->padding == b->padding && a->want_map == b->want_map &&
         a->want_gradient == b->want_gradient;
}

void ssimd_batcher_init(struct ssimd_batcher *batcher, size_t max_batch, uint64_t window_us) {
  memset(batcher, 0, sizeof(*batcher));
  batcher->max_batch = max_batch > 0 ? max_batch : 1;
  batcher->window_us = window_us;
}

void ssimd_batcher_destroy(struct ssimd_batcher *batcher) {
  struct ssimd_batch_group *group = batcher->groups;
  while (group != NULL) {
    struct ssimd_batch_group *next = group->next;
    free(group);
    group = next;
  }
  batcher->groups = NULL;
  batcher->count = 0;
}

int ssimd_batcher_push(struct ssimd_batcher *batcher, struct ssimd_batch_item *item,
                       uint64_t now_us) {
  struct ssimd_batch_group *group = batcher->groups;
  while (group != NULL && !key_equal(&group->key, &item->key))
    group = group->next;
  if (group == NULL) {
    group = calloc(1, sizeof(*group));
    if (group == NULL)
      return -1;
    group->key = item->key;
    group->next = batcher->groups;
    batcher->groups = group;
  }
  item->enqueued_us = now_us;
  item->group = group;
  item->next = NULL;
  item->prev = group->tail;
  if (group->tail != NULL)
    group->tail->next = item;
  else
    group->head = item;
  group->tail = item;
  group->count++;
  batcher->count++;
  return 0;
}

/* Unlink a group that has become empty: keeping it would make every scan longer. */
static void group_drop_if_empty(struct ssimd_batcher *batcher, struct ssimd_batch_group *group) {
  if (group->count > 0)
    return;
  struct ssimd_batch_group **link = &batcher->groups;
  while (*link != group)
    link = &(*link)->next;
  *link = group->next;
  free(group);
}

void ssimd_batcher_remove(struct ssimd_batcher *batcher, struct ssimd_batch_item *item) {
  struct ssimd_batch_group *group = item->group;
  if (group == NULL)
    return;
  if (item->prev != NULL)
    item->prev->next = item->next;
  else
    group->head = item->next;
  if (item->next != NULL)
    item->next->prev = item->prev;
  else
    group->tail = item->prev;
  item->prev = item->next = NULL;
  item->group = NULL;
  group->count--;
  batcher->count--;
  group_drop_if_empty(batcher, group);
}

static size_t take_from(struct ssimd_batcher *batcher, struct ssimd_batch_group *group,
                        struct ssimd_batch_item **out) {
  size_t n = group->count < batcher->max_batch ? group->count : batcher->max_batch;
  /* The last removal of a whole group frees it; the loop ends right after. */
  for (size_t i = 0; i < n; i++) {
    struct ssimd_batch_item *item = group->head;
    ssimd_batcher_remove(batcher, item);
    out[i] = item;
  }
  return n;
}

size_t ssimd_batcher_take(struct ssimd_batcher *batcher, uint64_t now_us, int more_coming,
                          struct ssimd_batch_item **out, uint64_t *wake_at_us) {
  *wake_at_us = UINT64_MAX;
  struct ssimd_batch_group *full = NULL, *oldest = NULL;
  for (struct ssimd_batch_group *g = batcher->groups; g != NULL; g = g->next) {
    if (g->count >= batcher->max_batch &&
        (full == NULL || g->head->enqueued_us < full->head->enqueued_us))
      full = g;
    if (oldest == NULL || g->head->enqueued_us < oldest->head->enqueued_us)
      oldest = g;
  }
  if (full != NULL)
    return take_from(batcher, full, out);
  if (oldest == NULL)
    return 0;
  uint64_t deadline = oldest->head->enqueued_us + batcher->window_us;
  if (now_us >= deadline || !more_coming)
    return take_from(batcher, oldest, out);
  *wake_at_us = deadline;
  return 0;
}
