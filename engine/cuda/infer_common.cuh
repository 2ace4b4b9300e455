/*
 * infer_common.cuh: what the two inference kernels share (infer.cu, and infer_tma.cu for sm_90
 * and later): the four statistics, the sliding window of the vertical blur, and the walk of a
 * launch's units. Internal to engine/cuda.
 *
 * Inference needs four blurred statistics, not five: S depends on the two variances only through
 * their sum (B = s11 + s22 + C2), so x^2 and y^2 are blurred together as x^2 + y^2. With the
 * statistics G*x, G*y, G*(x^2 + y^2) and G*(xy), a pixel costs 2 x 4 x 11 = 88 FMAs of blur
 * where training's five statistics cost 110. (Clamping the summed variance at 0 instead of each
 * variance differs only where a variance is negative by rounding, by far less than float32
 * resolves in the statistics themselves.)
 */
#ifndef SSIM_CUDA_INFER_COMMON_CUH
#define SSIM_CUDA_INFER_COMMON_CUH

#include "scores.cuh"

namespace ssim_cuda {

constexpr int kStats = 4;              /* G*x, G*y, G*(x^2 + y^2), G*(xy) */
constexpr int kBatch = SSIM_WINDOW;    /* output rows per batch: one turn of the sliding window */
constexpr int kWarm = SSIM_WINDOW - 1; /* input rows before the first output row completes */

/*
 * Division of numerators below 2^63 by a divisor set on the host, as a multiplication (Granlund
 * and Montgomery): a block computes its first walk from a few divisions before its first copy
 * can be issued, and the compiler's division routine makes each of those a chain of long
 * latencies. With l = ceil(log2 d), magic = ceil(2^(63 + l) / d) < 2^64 errs by less than d in
 * 2^(63 + l), so n * magic / 2^(63 + l) rounds down to n / d for every n < 2^63.
 */
struct fast_divisor {
  uint64_t magic; /* 0 for d = 1 */
  int shift;      /* l - 1 */

  void set(uint64_t d) {
    magic = 0;
    shift = 0;
    if (d <= 1)
      return;
    int l = 0;
    while (((uint64_t)1 << l) < d)
      l++;
    const unsigned __int128 power = (unsigned __int128)1 << (63 + l);
    magic = (uint64_t)((power + d - 1) / d);
    shift = l - 1;
  }

  __host__ __device__ __forceinline__ int64_t divide(int64_t n) const {
    if (magic == 0)
      return n;
#ifdef __CUDA_ARCH__
    const uint64_t high = __umul64hi((uint64_t)n, magic);
#else
    const uint64_t high = (uint64_t)(((unsigned __int128)(uint64_t)n * magic) >> 64);
#endif
    return (int64_t)(high >> shift);
  }
};

/*
 * How the rows of a launch are walked, computed on the host. The strips of all planes are put in
 * order (columns of `rows` map rows each), and each block of a persistent grid takes an equal
 * share of their cost: a column costs its rows plus the kWarm input rows that fill the sliding
 * window before its first output, and a share that starts inside a column fills the window again
 * (kWarm more rows that are not on the line). Cuts fall on multiples of `granule` rows of a
 * column: SSIM_BLOCK (32) where each 32-row unit's sum must come from one block (block means,
 * and the strip kernel's float sums of units), 1 where a plane's sum does not depend on the cuts
 * (the TMA kernel's integer sums of pixels).
 */
struct strip_plan {
  int64_t columns;       /* planes x strips */
  int64_t strips;        /* strips per plane */
  int64_t rows;          /* map rows of a column */
  int64_t cost;          /* columns x (rows + kWarm) */
  int64_t granule;       /* rows: 1 or SSIM_BLOCK, a power of two */
  int64_t block_rows;    /* ceil(rows / 32): units per strip */
  int64_t partial_pitch; /* sums per row of blocks: ceil(map_w / 64) x 2 */
  int64_t blocks;        /* the grid (launch_blocks) */
  fast_divisor by_blocks, by_span, by_rows, by_strips; /* by blocks, rows + kWarm, rows, strips */
};

/* Strip widths, narrowest first; the host picks one per call (pick_strip_width). */
constexpr int kStripWidths[SSIM_CUDA_INFER_WIDTHS] = {64, 128, 192};

/* The width of least cost(width) among those with a grid (resident[i] > 0), the widest on a
 * tie; -1 when none has one. */
template <typename Cost>
int pick_strip_width(const int resident[SSIM_CUDA_INFER_WIDTHS], Cost cost) {
  int best = -1;
  int64_t best_cost = 0;
  for (int i = 0; i < SSIM_CUDA_INFER_WIDTHS; i++) {
    if (resident[i] <= 0)
      continue;
    const int64_t c = cost(kStripWidths[i]);
    if (best < 0 || c <= best_cost) {
      best = i;
      best_cost = c;
    }
  }
  return best;
}

/* The row, counted over all columns in order, where the share starting at cost `pos` starts: a
 * share starting among a column's first kWarm positions starts at its first row. */
__host__ __device__ __forceinline__ int64_t share_start(const strip_plan &plan, int64_t pos) {
  const int64_t column = plan.by_span.divide(pos);
  const int64_t r = pos - column * (plan.rows + kWarm) - kWarm;
  return column * plan.rows + (r < 0 ? 0 : r & ~(plan.granule - 1));
}

/* One walk: map rows r0 .. r1 - 1 of one strip of one plane. */
struct strip_walk_span {
  int64_t plane, strip, r0, r1;
};

/* The walks of one block's share in order: its rows of each column it touches. (Host code too,
 * for the plan's tests.) */
struct walk_cursor {
  int64_t at, end; /* rows counted over all columns */

  __host__ __device__ __forceinline__ static walk_cursor of_block(const strip_plan &plan,
                                                                  int64_t block) {
    walk_cursor w;
    w.at = share_start(plan, plan.by_blocks.divide(plan.cost * block));
    w.end = share_start(plan, plan.by_blocks.divide(plan.cost * (block + 1)));
    return w;
  }

  /* The next walk into *span; false after the last. */
  __host__ __device__ __forceinline__ bool next(const strip_plan &plan, strip_walk_span *span) {
    if (at >= end)
      return false;
    const int64_t column = plan.by_rows.divide(at);
    span->plane = plan.by_strips.divide(column);
    span->strip = column - span->plane * plan.strips;
    span->r0 = at - column * plan.rows;
    span->r1 = min(plan.rows, end - column * plan.rows);
    at += span->r1 - span->r0;
    return true;
  }
};

/* Calls walk(plane, strip, r0, r1) for each walk of this block's share. */
template <typename Walk>
__device__ __forceinline__ void for_each_walk(const strip_plan &plan, Walk walk) {
  walk_cursor cursor = walk_cursor::of_block(plan, blockIdx.x);
  strip_walk_span w;
  while (cursor.next(plan, &w))
    walk(w.plane, w.strip, w.r0, w.r1);
}

/* The grid of a launch on at most `resident` blocks, each walking an equal share
 * (for_each_walk; the plan's `blocks`, which the launch must use), or one block a column where a
 * column costs no more than a share and its second fill: every walk is then a whole strip. That is
 * the case of many small planes, such as 192 planes of 256 x 256 in 128-column strips (384 columns)
 * on 396 blocks, three an SM. With four an SM (528 blocks, those strips' grid since they have one
 * buffer of blurred rows) the shares are 194 cost rows, and one block a strip there measured 1.3%
 * slower on an H200 (with shares of whole units): more warps an SM made up for the split strips. */
inline int64_t launch_blocks(const strip_plan &plan, int resident) {
  if (plan.columns <= resident && plan.rows <= div_up(plan.cost, (int64_t)resident))
    return plan.columns;
  const int64_t granules = plan.columns * div_up(plan.rows, plan.granule);
  return min((int64_t)resident, granules);
}

/* The plan of strips SW map columns wide, cut on multiples of `granule` rows (1 or
 * SSIM_BLOCK), and its grid on at most `resident` blocks. */
inline strip_plan make_strip_plan(const ssim_cuda_geometry &geo, int64_t planes, int sw,
                                  int64_t granule, int resident) {
  strip_plan plan;
  plan.strips = div_up(geo.map_w, sw);
  plan.columns = planes * plan.strips;
  plan.rows = geo.map_h;
  plan.cost = plan.columns * (plan.rows + kWarm);
  plan.granule = granule;
  plan.block_rows = div_up(geo.map_h, SSIM_BLOCK);
  plan.partial_pitch = 2 * div_up(geo.map_w, kTileW);
  plan.blocks = launch_blocks(plan, resident);
  plan.by_blocks.set((uint64_t)plan.blocks);
  plan.by_span.set((uint64_t)(plan.rows + kWarm));
  plan.by_rows.set((uint64_t)plan.rows);
  plan.by_strips.set((uint64_t)plan.strips);
  return plan;
}

/*
 * Adds one input row's statistics to the sliding window. Output rows j = i - 10 .. i use input
 * row i with tap i - j, and output j lives in accumulator j mod 11: with the row's phase
 * P = i mod 11, accumulator q takes tap (P - q) mod 11, and tap 0 starts a new output (an FMA
 * onto `bias`, a constant the caller wants added to every output). While the window fills (WARM:
 * the first 10 rows of a walk, i = P), only accumulators q <= P hold outputs of the walk.
 */
template <int P, bool WARM>
__device__ __forceinline__ void slide(float (&acc)[kBatch][kStats], const float (&st)[kStats],
                                      const float (&bias)[kStats]) {
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
#pragma unroll
  for (int q = 0; q < kBatch; q++) {
    if (WARM && q > P)
      continue;
    const int tap = (P - q + kBatch) % kBatch;
#pragma unroll
    for (int s = 0; s < kStats; s++)
      acc[q][s] = fmaf(w[tap], st[s], tap == 0 ? bias[s] : acc[q][s]);
  }
}

} // namespace ssim_cuda

#endif
