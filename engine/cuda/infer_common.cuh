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

/* How the units of a launch are walked, computed on the host. A unit is 32 map rows of one
 * strip of one plane (the rows of the 32 x 32 blocks of block_means); all units of all planes
 * are put in order, and each block of a persistent grid takes an equal run of them. */
struct strip_plan {
  int64_t units;         /* planes x strips x block_rows, in that order */
  int64_t strips;        /* strips per plane */
  int64_t block_rows;    /* ceil(map_h / 32): units per strip */
  int64_t partial_pitch; /* sums per row of blocks: ceil(map_w / 64) x 2 */
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

/* Calls walk(plane, strip, u0, u1) for each piece of this block's equal run of the launch's
 * units: units u0 .. u1 - 1 of one strip of one plane. */
template <typename Walk>
__device__ __forceinline__ void for_each_walk(const strip_plan &plan, Walk walk) {
  const int64_t begin = plan.units * blockIdx.x / gridDim.x;
  const int64_t end = plan.units * (blockIdx.x + 1) / gridDim.x;
  for (int64_t u = begin; u < end;) {
    const int64_t column = u / plan.block_rows; /* strip of a plane, in order */
    const int64_t u0 = u - column * plan.block_rows;
    const int64_t u1 = min(plan.block_rows, u0 + (end - u));
    const int64_t plane = column / plan.strips;
    walk(plane, column - plane * plan.strips, u0, u1);
    u += u1 - u0;
  }
}

/* The plan of strips SW map columns wide. */
inline strip_plan make_strip_plan(const ssim_cuda_geometry &geo, int64_t planes, int sw) {
  strip_plan plan;
  plan.strips = div_up(geo.map_w, sw);
  plan.block_rows = div_up(geo.map_h, SSIM_BLOCK);
  plan.units = planes * plan.strips * plan.block_rows;
  plan.partial_pitch = 2 * div_up(geo.map_w, kTileW);
  return plan;
}

/* The grid of a launch on at most `resident` blocks, each walking an equal run of the units
 * (for_each_walk). Where one block a strip makes no run longer, the grid is one block a strip:
 * every walk is then a whole strip, where a strip split between two blocks fills the sliding
 * window twice (10 input rows of both passes each time). That is the case of many small planes,
 * such as 192 planes of 256 x 256 in 128-column strips (384 strips of 8 units) on 396 blocks,
 * three an SM. With four an SM (528 blocks, those strips' grid since they have one buffer of
 * blurred rows) the runs are 5 or 6 units, and one block a strip there measured 1.3% slower on
 * an H200: more warps an SM made up for the split strips. */
inline int64_t launch_blocks(const strip_plan &plan, int resident) {
  const int64_t strips = plan.units / plan.block_rows; /* of all planes */
  if (strips <= resident && plan.block_rows == div_up(plan.units, resident))
    return strips;
  return min((int64_t)resident, plan.units);
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
