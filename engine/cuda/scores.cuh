/*
 * scores.cuh: how the map's sums become scores. Internal to engine/cuda.
 *
 * Every forward kernel adds each sum it makes of the map (a 32 x 32 block, or half a training
 * tile) to its plane's sum, in fixed point: round(sum * 2^shift) as a 64-bit integer
 * (ssim_cuda_geometry.sum_shift; see ssim_cuda_sum_shift), by atomic adds into one of the
 * plane's slots (ssim_cuda_sum_slots). The TMA kernel rounds each pixel's S instead, to 2^-22
 * (quarter_units), adds those integers over a walk and a warp, and makes one atomic a warp and
 * walk. Integer addition does not depend on order, so a plane's sum has the same bits however
 * the work was cut into launches, chunks and blocks and whatever order the blocks ran in: a
 * batch and its pairs alone, host and device memory, ssim_compute and ssim_compute_async agree
 * bitwise. Rounding a block's sum (up to 1024) to a multiple of 2^-shift (2^-39 for a 1080p
 * pair), or a pixel's S to 2^-22 (at most 1.2e-7 off, about a float's resolution of S), changes
 * a score by no more than float rounding of the map does.
 *
 * The scores are then written from those sums in one of two places, with the same code:
 *   - forward.cu's finalize kernel, a thread per pair, after the forward launches (training,
 *     block means, calls cut into chunks);
 *   - otherwise (an inference launch of a whole call of at most SSIM_CUDA_FINISH_MAX_PAIRS
 *     pairs) the inference kernel itself: the last of its blocks to finish (finish_launch).
 *     This saves the finalize kernel's launch, part of the fixed cost that dominates small calls.
 * Whichever writes a pair's scores also sets its planes' sums back to zero for the next call.
 */
#ifndef SSIM_CUDA_SCORES_CUH
#define SSIM_CUDA_SCORES_CUH

#include <cuda/atomic>

#include "cuda_tile.cuh"

namespace ssim_cuda {

/* Programmatic dependent launch (sm_90 and later; nothing before): an inference kernel lets the
 * finalize kernel that follows it be launched at once, and the finalize kernel waits until the
 * kernel before it has ended and its writes are visible (at once when it was launched the usual
 * way). */
__device__ __forceinline__ void allow_dependent_launch() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_prior_grid() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* `sum`, a sum of map pixels, in the fixed point of the planes' sums. */
__device__ __forceinline__ long long fixed_point(float sum, float sum_scale) {
  return __float2ll_rn(sum * sum_scale); /* a power of two: the product is exact */
}

/*
 * A pixel's S / 4 (in [-1/4, 1/4]) as a whole number of kQuarterUnit, rounded to nearest, when
 * `scale` is 1 / kQuarterUnit (0 gives 0). Adding 1.5 x 2^23 to S / 4 x 2^24 in one FMA leaves a
 * float in [2^23, 2^24], whose last mantissa bit is worth 1, so the rounding is the FMA's own;
 * the float's bits less those of 1.5 x 2^23 are the integer. The TMA kernel adds these integers,
 * so that its sums do not depend on how the rows were cut (infer_tma.cu).
 */
constexpr int kQuarterShift = 24;              /* kQuarterUnit = 2^-24 */
constexpr unsigned kQuarterBias = 0x4B400000u; /* the bits of 1.5 x 2^23 */
__device__ __forceinline__ unsigned quarter_bits(float s4, float scale) {
  return __float_as_uint(fmaf(s4, scale, 12582912.0f)); /* the integer plus kQuarterBias */
}
__device__ __forceinline__ int quarter_units(float s4, float scale) {
  return (int)(quarter_bits(s4, scale) - kQuarterBias);
}

/* Adds `q` (fixed_point sums, added up) to plane `plane` of a launch, in this block's slot.
 * Zeros (blocks past the map's edge) are not added: adding them would change nothing. */
__device__ __forceinline__ void add_to_plane_sum(const ssim_cuda_forward_args &args, int64_t plane,
                                                 long long q) {
  if (q != 0)
    atomicAdd(args.plane_sums + (blockIdx.x & (args.sum_slots - 1)) * args.sum_stride + plane,
              (unsigned long long)q);
}

/* Shared memory of an in-kernel finish (finish_launch): a word, and a sum a plane. */
constexpr size_t kFinishSharedBytes = sizeof(double) * (1 + SSIM_CUDA_FINISH_MAX_PLANES);

/*
 * Returns in every thread whether the block's increment of *counter by `add` made it reach
 * `target`: the block that completes a count does the work that waits for it. Every thread's
 * writes and atomics before the call are visible to that block. `word` is a shared int, free
 * before and after.
 *
 * One thread counts, with an acq_rel atomic: the barrier before it orders the block's writes
 * before its release, and the barrier after it orders its acquire before the other threads'
 * reads.
 */
__device__ inline bool completes(unsigned long long *counter, unsigned long long add,
                                 unsigned long long target, volatile int *word) {
  __syncthreads();
  if (threadIdx.x == 0) {
    cuda::atomic_ref<unsigned long long, cuda::thread_scope_device> count(*counter);
    *word = count.fetch_add(add, cuda::memory_order_acq_rel) + add == target;
  }
  __syncthreads();
  const bool last = *word != 0;
  __syncthreads(); /* the word is free again */
  return last;
}

__device__ inline double nan_score() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

/* Scores from fixed-point sums: a channel score from its plane's sum, a pair's from its planes'
 * sums added (ssim_cuda_sum_shift leaves room for them); NaN when `bad` (the call's input was not
 * finite). The one expression of each, so that every place that writes scores writes the same
 * bits: a product with the geometry's unit, where a quotient by the pixel count would cost a
 * double division (tens of dependent instructions) at the end of the in-kernel finish. */
__device__ __forceinline__ double plane_score(const ssim_cuda_geometry &geo, unsigned long long q,
                                              bool bad) {
  return bad ? nan_score() : (double)(long long)q * geo.plane_unit;
}
__device__ __forceinline__ double pair_score(const ssim_cuda_geometry &geo,
                                             unsigned long long total, bool bad) {
  return bad ? nan_score() : (double)(long long)total * geo.pair_unit;
}

/*
 * One thread: pair `pair`'s channel scores and score from its planes' fixed-point sums (slot
 * k < slots of plane p at plane_sums[k * sum_stride + p]), which it then sets back to zero. The
 * sums were written by other blocks or launches, so they are read from L2 (ld.cg): L1 is not
 * coherent.
 */
__device__ inline void score_pair(const ssim_cuda_geometry &geo, int64_t pair,
                                  unsigned long long *plane_sums, int64_t sum_stride, int slots,
                                  double *scores, double *channel_scores, bool bad) {
  const int channels = geo.channels;
  unsigned long long total = 0;
  for (int k = 0; k < channels; k++) {
    unsigned long long q = 0;
#pragma unroll 4
    for (int slot = 0; slot < slots; slot++) {
      unsigned long long *sum = plane_sums + slot * sum_stride + pair * channels + k;
      q += __ldcg(sum);
      *sum = 0;
    }
    total += q;
    channel_scores[pair * channels + k] = plane_score(geo, q, bad);
  }
  scores[pair] = pair_score(geo, total, bad);
}

/*
 * The in-kernel finish of an inference launch (args.finish.scores set; see ssim_cuda_finish).
 * Every block, once it has walked its run and added its sums and set the non-finite flag,
 * counts itself done; the last one writes every pair's scores. `shared` is kFinishSharedBytes
 * of shared memory, free after the walks.
 *
 * The last block's threads share the reads of the planes' slots (a thread a slot, 4 reads in
 * flight a thread; at most 256 slots, ssim_cuda_sum_slots), add each plane's up over its lanes
 * into shared memory, then write a channel score a thread and a score a thread: a 1080p pair's
 * 48 slots cost one trip to L2 instead of the three of a thread a pair. The integers are
 * score_pair's, and so are the scores' bits (plane_score, pair_score).
 */
__device__ inline void finish_launch(const ssim_cuda_geometry &geo,
                                     const ssim_cuda_forward_args &args, double *shared) {
  const ssim_cuda_finish &f = args.finish;
  if (!completes(f.counters, 1ull, gridDim.x, reinterpret_cast<volatile int *>(shared)))
    return;
  const unsigned flag = *reinterpret_cast<volatile unsigned *>(args.nonfinite);
  const int64_t planes = args.planes;
  unsigned long long *totals = reinterpret_cast<unsigned long long *>(shared + 1);
  /* Entry e is slot e % slots of plane e / slots: each plane's slots are lanes of one warp,
   * added with shuffles. The rounds are the same in every thread (the shuffles need whole
   * warps). */
  static_assert(SSIM_CUDA_SUM_SLOTS <= 32, "a plane's slots are lanes of one warp");
  constexpr int kInFlight = 4;
  const int slots = args.sum_slots, shift = __ffs(slots) - 1; /* slots = 2^shift */
  const int64_t entries = planes << shift;
  const auto slot_of = [&](int64_t e) {
    return args.plane_sums + (e & (slots - 1)) * args.sum_stride + (e >> shift);
  };
  for (int64_t round = 0; round < entries; round += kInFlight * blockDim.x) {
    unsigned long long v[kInFlight];
#pragma unroll
    for (int j = 0; j < kInFlight; j++) {
      const int64_t e = round + j * blockDim.x + threadIdx.x;
      v[j] = e < entries ? __ldcg(slot_of(e)) : 0;
    }
#pragma unroll
    for (int j = 0; j < kInFlight; j++) {
      const int64_t e = round + j * blockDim.x + threadIdx.x;
      for (int off = slots / 2; off > 0; off >>= 1)
        v[j] += __shfl_xor_sync(0xffffffffu, v[j], off);
      if (e < entries) {
        *slot_of(e) = 0;
        if ((e & (slots - 1)) == 0)
          totals[e >> shift] = v[j];
      }
    }
  }
  __syncthreads();
  const bool bad = flag == args.call;
  const int channels = geo.channels;
  for (int64_t p = threadIdx.x; p < planes; p += blockDim.x)
    f.channel_scores[p] = plane_score(geo, totals[p], bad);
  for (int64_t pair = threadIdx.x; pair < planes / channels; pair += blockDim.x) {
    unsigned long long total = 0;
    for (int k = 0; k < channels; k++)
      total += totals[pair * channels + k];
    f.scores[pair] = pair_score(geo, total, bad);
  }
  if (threadIdx.x == 0) {
    *f.counters = 0;
    if (f.flag_copy != nullptr)
      *f.flag_copy = flag;
  }
}

} // namespace ssim_cuda

#endif
