/*
 * scores.cuh: how the sums of the map's 32 x 32 blocks become scores. Internal to engine/cuda.
 *
 * Two places do it, with the same code so that they give the same bits:
 *   - forward.cu's finalize kernel, one block per plane, after the forward launches;
 *   - the inference kernels themselves, when one small launch covers a whole call and no block
 *     means are asked for (ssim_cuda_finish, ssim_cuda_finish_fits): the last block of the
 *     launch to finish sums every plane and writes the scores. This saves the finalize kernel's
 *     launch, part of the fixed cost that dominates small calls.
 *
 * The order of every sum is fixed: a plane's entries are added by 256 lanes (kSumLanes) in
 * strides, whatever the block size, then in a fixed tree; a pair's planes in channel order.
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

constexpr int kSumLanes = 256; /* the order of a plane's sum, not a block size */

/* Entries a lane loads ahead of adding them: the adds stay in order, the loads overlap. */
constexpr int kSumBatch = 8;

/* One warp (`lane` its lane): the tree of 256 lane sums r[0 .. 255], which adds lane l + half
 * to lane l for half = 128, 64, ..., 1. Lane l first adds the eight lanes that end in lane l
 * after the levels 128, 64 and 32, in the tree's order, then the levels 16 .. 1 are shuffles.
 * Every lane gets the total. */
__device__ inline double tree_sum(const double *r, int lane) {
  static_assert(kSumLanes == 256, "the first three levels of the tree are written out");
  const int l = lane;
  double v = ((r[l] + r[l + 128]) + (r[l + 64] + r[l + 192])) +
             ((r[l + 32] + r[l + 160]) + (r[l + 96] + r[l + 224]));
#pragma unroll
  for (int half = 16; half > 0; half >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, half);
  return __shfl_sync(0xffffffffu, v, 0);
}

/*
 * The sum of p[0 .. n - 1] in the fixed order above; every thread of the block gets it. All
 * threads call it; s_red is kSumLanes doubles of shared memory, free before and after. Entries
 * written by other blocks of the same launch are read from L2 (ld.cg): L1 is not coherent.
 *
 * Warp 0 adds the 256 lane sums (tree_sum).
 */
__device__ inline double ordered_sum(const float *p, int64_t n, double *s_red) {
  for (int lane = threadIdx.x; lane < kSumLanes; lane += blockDim.x) {
    double s = 0.0;
    int64_t i = lane;
    for (; i + (kSumBatch - 1) * kSumLanes < n; i += kSumBatch * kSumLanes) {
      float v[kSumBatch];
#pragma unroll
      for (int k = 0; k < kSumBatch; k++)
        v[k] = __ldcg(p + i + k * kSumLanes);
#pragma unroll
      for (int k = 0; k < kSumBatch; k++)
        s += v[k];
    }
    for (; i < n; i += kSumLanes)
      s += __ldcg(p + i);
    s_red[lane] = s;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const double v = tree_sum(s_red, threadIdx.x);
    __syncwarp();
    if (threadIdx.x == 0)
      s_red[0] = v;
  }
  __syncthreads();
  const double total = s_red[0];
  __syncthreads();
  return total;
}

/* Shared memory of the block-wide steps below: ordered_sum's lanes and a word. */
constexpr size_t kScoresSharedBytes = (kSumLanes + 1) * sizeof(double);
/* Those of an in-kernel finish (kernel_finisher): the lane sums of its planes and a word. */
constexpr size_t kFinishSharedBytes =
    (SSIM_CUDA_FINISH_MAX_PLANES * kSumLanes + 1) * sizeof(double);

/*
 * Returns in every thread whether the block's increment of *counter by `add` made it reach
 * `target`: the block that completes a count does the work that waits for it. Every thread's
 * writes before the call are visible to that block. `word` is a shared int, free before and
 * after.
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

/* The scores from the planes' sums, for both ways of finishing, which must give the same bits: a
 * channel's from its plane's sum, a pair's from its planes' sums added in channel order, and the
 * NaN that stands for both when the call's input was not finite. */
__device__ inline double channel_score(const ssim_cuda_geometry &geo, double plane_sum) {
  return plane_sum / (double)(geo.map_h * geo.map_w);
}
__device__ inline double pair_score(const ssim_cuda_geometry &geo, double planes_sum) {
  return planes_sum / ((double)(geo.map_h * geo.map_w) * geo.channels);
}
__device__ inline double nan_score() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

/*
 * Every thread of the block, with a plane's sum `s`: the plane's channel score and, through the
 * pair's counter (in `pair_counters`, zero before and left so), the pair's score from the last of
 * its planes to get there, the planes' sums added in channel order. Both are NaN when `bad`.
 * (Block-wide rather than one thread's work: a division or call in one thread's branch makes the
 * compiler guard every warp shuffle of the kernel against divergence.)
 */
__device__ inline void score_plane(const ssim_cuda_geometry &geo, int64_t plane, double s,
                                   double *scores, double *channel_scores, double *plane_sums,
                                   unsigned long long *pair_counters, bool bad, double *shared) {
  const int channels = geo.channels;
  const int64_t pair = plane / channels;
  const double channel = channel_score(geo, s);
  if (threadIdx.x == 0)
    channel_scores[plane] = bad ? nan_score() : channel;
  double total = s;
  if (channels > 1) {
    if (threadIdx.x == 0)
      plane_sums[plane] = s;
    if (!completes(&pair_counters[pair], 1ull, (unsigned long long)channels,
                   reinterpret_cast<volatile int *>(shared)))
      return;
    const volatile double *sums = plane_sums + pair * channels;
    total = 0.0;
    for (int k = 0; k < channels; k++)
      total += sums[k];
  }
  const double score = pair_score(geo, total);
  if (threadIdx.x == 0) {
    scores[pair] = bad ? nan_score() : score;
    if (channels > 1)
      pair_counters[pair] = 0;
  }
}

/*
 * The in-kernel finish of an inference launch (args.finish.scores set; see
 * ssim_cuda_finish_fits for the launches it serves). Every block, once it has walked its run
 * and written its partial sums and the non-finite flag, counts itself done; the last one sums
 * every plane of the launch and writes the scores. A chain of one atomic and a few batches of
 * loads: the finalize kernel's launch and its own chain of atomics cost more on small calls.
 *
 * The sums are ordered_sum's, computed the other way round: first every lane sum of every plane
 * with the loads of a thread's lanes overlapped, then a warp per plane adds the plane's 256
 * lane sums in ordered_sum's tree.
 */
struct kernel_finisher {
  const ssim_cuda_geometry &geo;
  const ssim_cuda_forward_args &args;
  int64_t per_plane; /* partial sums of a plane */
  double *shared;    /* kFinishSharedBytes of shared memory, free after the walks */

  /* A thread sums pairs of adjacent lanes, each pair's entries loaded as one float2 (a plane's
   * entry count is even: the inference layouts' pitch is), kPairsAtOnce pairs together and
   * kLaneBatch entries of each at once: 16 loads of two entries in flight a thread. On an H200
   * that took the 4K pair's lane sums from 8.5k-10k cycles (one entry a load) to 5.6k-8.1k; 16
   * entries at once raised the kernels' registers (112 to 150) and was not faster in a second
   * comparison. The finish runs once a launch, so its instructions are fetched cold, and short
   * code pays. */
  static constexpr int kPairsAtOnce = 2;
  static constexpr int kLaneBatch = 8;

  __device__ void block_done() const {
    const ssim_cuda_finish &f = args.finish;
    volatile int *word =
        reinterpret_cast<volatile int *>(shared + SSIM_CUDA_FINISH_MAX_PLANES * kSumLanes);
    if (!completes(f.counters, 1ull, gridDim.x, word)) /* after its partial sums and flag */
      return;
    lane_sums();
    __syncthreads();
    plane_sums();
    __syncthreads();
    pair_scores();
  }

  /* shared[plane * kSumLanes + lane]: the sum of entries lane, lane + 256, ... of the plane, in
   * that order. (A batch past a lane's last entry adds zeros: a sum that starts at +0 never
   * becomes -0, so adding +0 changes nothing.) One compare and one load for two entries: the
   * block's single SM issues every instruction of this, so the index arithmetic is kept out of
   * the loop. Both lanes of a pair have the same count of entries, since the plane's count is
   * even. */
  __device__ void lane_sums() const {
    constexpr int kPairLanes = kSumLanes / 2;
    const int total = (int)args.planes * kPairLanes;
    for (int q0 = threadIdx.x; q0 < total; q0 += kPairsAtOnce * blockDim.x) {
      const float2 *first[kPairsAtOnce]; /* a pair's first entries */
      int count[kPairsAtOnce];           /* and how many each lane has */
      int most = 0;
#pragma unroll
      for (int j = 0; j < kPairsAtOnce; j++) {
        const int id = q0 + j * (int)blockDim.x;
        const int64_t plane = id / kPairLanes, lane = 2 * (id % kPairLanes);
        first[j] = reinterpret_cast<const float2 *>(args.partials + plane * per_plane + lane);
        count[j] =
            id < total && lane < per_plane ? (int)((per_plane - 1 - lane) / kSumLanes) + 1 : 0;
        most = max(most, count[j]);
      }
      double s[kPairsAtOnce][2] = {};
      for (int k = 0; k < most; k += kLaneBatch) {
        float2 v[kPairsAtOnce][kLaneBatch];
#pragma unroll
        for (int j = 0; j < kPairsAtOnce; j++) {
          const float2 *p = first[j] + (int64_t)k * kPairLanes;
#pragma unroll
          for (int b = 0; b < kLaneBatch; b++)
            v[j][b] = k + b < count[j] ? __ldcg(p + b * kPairLanes) : make_float2(0.0f, 0.0f);
        }
#pragma unroll
        for (int j = 0; j < kPairsAtOnce; j++)
#pragma unroll
          for (int b = 0; b < kLaneBatch; b++) {
            s[j][0] += v[j][b].x;
            s[j][1] += v[j][b].y;
          }
      }
#pragma unroll
      for (int j = 0; j < kPairsAtOnce; j++) {
        const int id = q0 + j * (int)blockDim.x;
        if (id < total) {
          shared[2 * id] = s[j][0];
          shared[2 * id + 1] = s[j][1];
        }
      }
    }
  }

  /* A warp per plane: its sum (kept in its first lane sum) and its channel score. */
  __device__ void plane_sums() const {
    const int lane = threadIdx.x % 32;
    for (int plane = threadIdx.x / 32; plane < args.planes; plane += blockDim.x / 32) {
      double *r = shared + plane * kSumLanes;
      const double sum = tree_sum(r, lane);
      const double channel = channel_score(geo, sum);
      __syncwarp();
      if (lane == 0) {
        r[0] = sum;
        args.finish.channel_scores[plane] = channel;
      }
    }
  }

  /* The pairs' scores from their planes' sums in channel order (as score_plane adds them), or
   * NaN everywhere when the flag holds this call's id. */
  __device__ void pair_scores() const {
    const ssim_cuda_finish &f = args.finish;
    const int channels = geo.channels;
    const int64_t pairs = args.planes / channels;
    const unsigned flag = *reinterpret_cast<volatile unsigned *>(args.nonfinite);
    const bool bad = flag == args.call;
    for (int64_t pair = threadIdx.x; pair < pairs; pair += blockDim.x) {
      double total = 0.0;
      for (int k = 0; k < channels; k++)
        total += shared[(pair * channels + k) * kSumLanes];
      const double score = pair_score(geo, total);
      f.scores[pair] = bad ? nan_score() : score;
      for (int k = 0; k < channels && bad; k++)
        f.channel_scores[pair * channels + k] = nan_score();
    }
    if (threadIdx.x == 0) {
      *f.counters = 0;
      if (f.flag_copy != nullptr)
        *f.flag_copy = flag;
    }
  }
};

} // namespace ssim_cuda

#endif
