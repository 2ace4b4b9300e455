/*
 * test_cuda_plan.cu: how the CUDA inference kernels cut a launch's rows among their blocks
 * (strip_plan, engine/cuda/infer_common.cuh), checked on the host: no GPU needed. Every map row
 * of every strip of every plane must be walked by exactly one block, in walks that stay inside
 * one strip, cut on the plan's granule; the longest share must stay within a fill of an equal
 * share; and the multiply that replaces the division must divide exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/infer_common.cuh"

/* C headers without C++ guards. */
extern "C" {
#include <cmocka.h>

#include "harness.h"
}

using namespace ssim_cuda;

namespace {

/* A 64-bit random word (splitmix64 over a state seeded from the run's seed). */
uint64_t next_word(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* In [lo, hi]. */
int64_t next_in(uint64_t *state, int64_t lo, int64_t hi) {
  return lo + (int64_t)(next_word(state) % (uint64_t)(hi - lo + 1));
}

void check_quotient(uint64_t n, uint64_t d) {
  fast_divisor f;
  f.set(d);
  const int64_t got = f.divide((int64_t)n), want = (int64_t)(n / d);
  if (got != want) {
    fprintf(stderr, "%llu / %llu: got %lld, want %lld\n", (unsigned long long)n,
            (unsigned long long)d, (long long)got, (long long)want);
    fail();
  }
}

void test_fast_divisor(void **state) {
  (void)state;
  const uint64_t top = ((uint64_t)1 << 63) - 1; /* the largest numerator allowed */
  const uint64_t p31 = (uint64_t)1 << 31, p32 = (uint64_t)1 << 32, p40 = (uint64_t)1 << 40;
  const uint64_t divisors[] = {1,    2,     3,     7,     10,      11,  32,      264, 528,    1090,
                               1089, 65535, 65536, 65537, p31 - 1, p31, p32 - 1, p32, p40 + 3};
  for (uint64_t d : divisors) {
    const uint64_t numerators[] = {0,         1,   d - 1,   d,           d + 1,
                                   2 * d - 1, top, top - 1, top / d * d, top / d * d - 1};
    for (uint64_t n : numerators)
      if (n <= top)
        check_quotient(n, d);
  }
  uint64_t rng = th_seed() ^ 0x6469766964650000ull;
  for (int i = 0; i < 200000; i++) {
    const int bits = (int)next_in(&rng, 1, 40);
    const uint64_t d = 1 + next_word(&rng) % ((uint64_t)1 << bits);
    const uint64_t n = next_word(&rng) >> next_in(&rng, 1, 63);
    check_quotient(n, d);
    check_quotient(n / d * d, d); /* exact multiples, where rounding would show first */
  }
}

/* A launch's geometry as the plan reads it: only the map's size. */
ssim_cuda_geometry map_of(int64_t map_h, int64_t map_w) {
  ssim_cuda_geometry geo;
  memset(&geo, 0, sizeof(geo));
  geo.map_h = geo.height = map_h;
  geo.map_w = geo.width = map_w;
  return geo;
}

/* Walks every block's share of one plan; checks each row is walked once and the shares'
 * lengths. Returns the number of blocks that walked anything. */
int64_t check_plan(int64_t planes, int64_t map_h, int64_t map_w, int sw, int64_t granule,
                   int resident) {
  const strip_plan plan = make_strip_plan(map_of(map_h, map_w), planes, sw, granule, resident);
  char where[160];
  snprintf(where, sizeof(where), "%lld planes of %lldx%lld, strips of %d, granule %lld, %d blocks",
           (long long)planes, (long long)map_h, (long long)map_w, sw, (long long)granule, resident);
  if (plan.blocks < 1 || plan.blocks > resident) {
    fprintf(stderr, "%s: a grid of %lld\n", where, (long long)plan.blocks);
    fail();
  }
  const int64_t total = plan.columns * plan.rows;
  unsigned char *seen = static_cast<unsigned char *>(calloc((size_t)total, 1));
  assert_non_null(seen);
  /* An equal share of the cost line, its rounding, a fill that starts inside a column, and
   * (with units) the rows a share's start gains from rounding down to a unit. */
  const int64_t bound = div_up(plan.cost, plan.blocks) + kWarm + granule - 1;
  int64_t busy = 0;
  for (int64_t b = 0; b < plan.blocks; b++) {
    walk_cursor cursor = walk_cursor::of_block(plan, b);
    strip_walk_span w;
    int64_t cost = 0;
    while (cursor.next(plan, &w)) {
      const int64_t column = w.plane * plan.strips + w.strip;
      const bool inside = w.plane >= 0 && w.plane < planes && w.strip >= 0 &&
                          w.strip < plan.strips && 0 <= w.r0 && w.r0 < w.r1 && w.r1 <= map_h;
      const bool on_granule = w.r0 % granule == 0 && (w.r1 % granule == 0 || w.r1 == map_h);
      if (!inside || !on_granule) {
        fprintf(stderr, "%s: block %lld walks rows %lld..%lld of strip %lld of plane %lld\n", where,
                (long long)b, (long long)w.r0, (long long)w.r1, (long long)w.strip,
                (long long)w.plane);
        free(seen);
        fail();
      }
      for (int64_t r = w.r0; r < w.r1; r++) {
        if (seen[column * plan.rows + r]++ != 0) {
          fprintf(stderr, "%s: row %lld of column %lld walked twice\n", where, (long long)r,
                  (long long)column);
          free(seen);
          fail();
        }
      }
      cost += w.r1 - w.r0 + kWarm;
    }
    busy += cost > 0;
    if (cost > bound) {
      fprintf(stderr, "%s: block %lld's share costs %lld rows, more than %lld\n", where,
              (long long)b, (long long)cost, (long long)bound);
      free(seen);
      fail();
    }
  }
  for (int64_t i = 0; i < total; i++) {
    if (seen[i] != 1) {
      fprintf(stderr, "%s: row %lld of column %lld never walked\n", where,
              (long long)(i % plan.rows), (long long)(i / plan.rows));
      free(seen);
      fail();
    }
  }
  free(seen);
  return busy;
}

/* The benchmark shapes on an H200's grids (264 blocks of 192 columns, 528 of 128), and the
 * one-block-a-strip grid of many small planes. */
void test_plan_known_shapes(void **state) {
  (void)state;
  check_plan(3, 1080, 1920, 192, 1, 264);
  check_plan(3, 1080, 1920, 192, SSIM_BLOCK, 264);
  check_plan(24, 1080, 1920, 192, 1, 264);
  check_plan(3, 2160, 3840, 192, 1, 264);
  check_plan(32, 1080, 1920, 192, 1, 264);
  check_plan(192, 256, 256, 128, 1, 528);
  check_plan(192, 256, 256, 128, SSIM_BLOCK, 528);
  /* 384 columns of 256 rows on 396 blocks: an equal share would cost 258 rows and a second
   * fill, a whole column 266 with its one fill, so each block walks a column. */
  const strip_plan whole = make_strip_plan(map_of(256, 256), 192, 128, 1, 396);
  assert_int_equal(whole.blocks, 384);
  assert_int_equal(check_plan(192, 256, 256, 128, 1, 396), 384);
  /* Fewer rows than blocks: one row a block at most, the rest idle. */
  assert_int_equal(check_plan(1, 1, 1, 64, 1, 1188), 1);
  check_plan(2, 5, 3, 64, 1, 1188);
}

void test_plan_random_shapes(void **state) {
  (void)state;
  uint64_t rng = th_seed() ^ 0x706c616e73000000ull;
  static const int widths[] = {64, 128, 192};
  for (int i = 0; i < 400; i++) {
    const int64_t planes = next_in(&rng, 1, 40);
    const int64_t map_h = next_in(&rng, 1, next_in(&rng, 0, 1) ? 40 : 700);
    const int64_t map_w = next_in(&rng, 1, 800);
    const int sw = widths[next_in(&rng, 0, 2)];
    const int64_t granule = next_in(&rng, 0, 1) ? 1 : SSIM_BLOCK;
    const int resident = (int)next_in(&rng, 1, 1200);
    check_plan(planes, map_h, map_w, sw, granule, resident);
  }
}

} // namespace

int main(void) {
  printf("test_cuda_plan: seed %llu (replay with SSIM_TEST_SEED=%llu)\n",
         (unsigned long long)th_seed(), (unsigned long long)th_seed());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fast_divisor),
      cmocka_unit_test(test_plan_known_shapes),
      cmocka_unit_test(test_plan_random_shapes),
  };
  return cmocka_run_group_tests_name("cuda plan", tests, NULL, NULL);
}
