/*
 * test_server_batcher.c: the scheduler's grouping and window logic, with a fake clock.
 */
#include "batcher.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static struct ssimd_batch_key key_of(size_t width, int want_map) {
  struct ssimd_batch_key key = {.channels = 3,
                                .height = 10,
                                .width = width,
                                .dtype = SSIM_DTYPE_U8,
                                .padding = SSIM_PADDING_SAME,
                                .want_map = want_map,
                                .want_gradient = 0};
  return key;
}

static void push(struct ssimd_batcher *b, struct ssimd_batch_item *item, size_t width, int want_map,
                 uint64_t now) {
  memset(item, 0, sizeof(*item));
  item->key = key_of(width, want_map);
  assert_int_equal(ssimd_batcher_push(b, item, now), 0);
}

static void test_lone_item_goes_at_once_when_nothing_is_coming(void **state) {
  (void)state;
  struct ssimd_batcher b;
  ssimd_batcher_init(&b, 8, 2000);
  struct ssimd_batch_item item, *out[8];
  uint64_t wake = 0;
  push(&b, &item, 16, 0, 1000);
  assert_int_equal(ssimd_batcher_take(&b, 1000, 0, out, &wake), 1);
  assert_ptr_equal(out[0], &item);
  assert_int_equal(b.count, 0);
  assert_int_equal(ssimd_batcher_take(&b, 1000, 0, out, &wake), 0);
  assert_true(wake == UINT64_MAX);
  ssimd_batcher_destroy(&b);
}

static void test_waits_for_the_window_while_more_is_coming(void **state) {
  (void)state;
  struct ssimd_batcher b;
  ssimd_batcher_init(&b, 8, 2000);
  struct ssimd_batch_item items[3], *out[8];
  uint64_t wake = 0;
  push(&b, &items[0], 16, 0, 1000);
  assert_int_equal(ssimd_batcher_take(&b, 1000, 1, out, &wake), 0);
  assert_true(wake == 3000);
  push(&b, &items[1], 16, 0, 1500);
  push(&b, &items[2], 16, 0, 2500);
  assert_int_equal(ssimd_batcher_take(&b, 2999, 1, out, &wake), 0);
  assert_true(wake == 3000);
  assert_int_equal(ssimd_batcher_take(&b, 3000, 1, out, &wake), 3);
  assert_ptr_equal(out[0], &items[0]);
  assert_ptr_equal(out[1], &items[1]);
  assert_ptr_equal(out[2], &items[2]);
  ssimd_batcher_destroy(&b);
}

static void test_full_group_goes_at_once_and_splits(void **state) {
  (void)state;
  struct ssimd_batcher b;
  ssimd_batcher_init(&b, 4, 1000000);
  struct ssimd_batch_item items[6], *out[4];
  uint64_t wake = 0;
  for (int i = 0; i < 6; i++)
    push(&b, &items[i], 16, 0, 10 + (uint64_t)i);
  assert_int_equal(ssimd_batcher_take(&b, 20, 1, out, &wake), 4);
  for (int i = 0; i < 4; i++)
    assert_ptr_equal(out[i], &items[i]);
  /* Two left, not full, window not passed, more coming: wait. */
  assert_int_equal(ssimd_batcher_take(&b, 21, 1, out, &wake), 0);
  assert_true(wake == 14 + 1000000);
  assert_int_equal(ssimd_batcher_take(&b, 21, 0, out, &wake), 2);
  ssimd_batcher_destroy(&b);
}

static void test_groups_by_shape_and_outputs(void **state) {
  (void)state;
  struct ssimd_batcher b;
  ssimd_batcher_init(&b, 8, 0);
  struct ssimd_batch_item items[5], *out[8];
  uint64_t wake = 0;
  push(&b, &items[0], 16, 0, 1); /* group A */
  push(&b, &items[1], 32, 0, 2); /* group B: other width */
  push(&b, &items[2], 16, 1, 3); /* group C: wants the map */
  push(&b, &items[3], 16, 0, 4); /* group A */
  push(&b, &items[4], 32, 0, 5); /* group B */
  /* Window 0: the group of the oldest item goes, all of it. */
  assert_int_equal(ssimd_batcher_take(&b, 5, 1, out, &wake), 2);
  assert_ptr_equal(out[0], &items[0]);
  assert_ptr_equal(out[1], &items[3]);
  assert_int_equal(ssimd_batcher_take(&b, 5, 1, out, &wake), 2);
  assert_ptr_equal(out[0], &items[1]);
  assert_ptr_equal(out[1], &items[4]);
  assert_int_equal(ssimd_batcher_take(&b, 5, 1, out, &wake), 1);
  assert_ptr_equal(out[0], &items[2]);
  assert_int_equal(b.count, 0);
  assert_null(b.groups);
  ssimd_batcher_destroy(&b);
}

static void test_full_group_beats_older_partial_group(void **state) {
  (void)state;
  struct ssimd_batcher b;
  ssimd_batcher_init(&b, 2, 5000);
  struct ssimd_batch_item items[3], *out[2];
  uint64_t wake = 0;
  push(&b, &items[0], 16, 0, 1);
  push(&b, &items[1], 32, 0, 2);
  push(&b, &items[2], 32, 0, 3);
  assert_int_equal(ssimd_batcher_take(&b, 4, 1, out, &wake), 2);
  assert_ptr_equal(out[0], &items[1]);
  assert_ptr_equal(out[1], &items[2]);
  ssimd_batcher_destroy(&b);
}

static void test_remove(void **state) {
  (void)state;
  struct ssimd_batcher b;
  ssimd_batcher_init(&b, 8, 0);
  struct ssimd_batch_item items[3], *out[8];
  uint64_t wake = 0;
  for (int i = 0; i < 3; i++)
    push(&b, &items[i], 16, 0, (uint64_t)i);
  ssimd_batcher_remove(&b, &items[1]);
  ssimd_batcher_remove(&b, &items[1]); /* twice is harmless */
  assert_int_equal(b.count, 2);
  assert_int_equal(ssimd_batcher_take(&b, 10, 0, out, &wake), 2);
  assert_ptr_equal(out[0], &items[0]);
  assert_ptr_equal(out[1], &items[2]);
  push(&b, &items[0], 16, 0, 20);
  ssimd_batcher_remove(&b, &items[0]);
  assert_null(b.groups);
  ssimd_batcher_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lone_item_goes_at_once_when_nothing_is_coming),
      cmocka_unit_test(test_waits_for_the_window_while_more_is_coming),
      cmocka_unit_test(test_full_group_goes_at_once_and_splits),
      cmocka_unit_test(test_groups_by_shape_and_outputs),
      cmocka_unit_test(test_full_group_beats_older_partial_group),
      cmocka_unit_test(test_remove),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
