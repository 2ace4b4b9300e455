/*
 * forward.cu: the fused forward kernels (score, map, training) and the final reduction.
 *
 * One block computes one tile of the map: it stages both images once with their halo, converting
 * 8-bit, 16-bit or float input to float on the way, blurs the five statistics (x, x^2, y, y^2, xy)
 * separably in shared memory and registers, and evaluates SSIM in registers. What leaves the
 * block is chosen per launch: the map, the two per-tile sums that give the scores and
 * block_means, and for training the derivative planes of the backward pass. Nothing else is
 * written, so inference reads each input about once and writes a few floats per tile.
 */
#include "cuda_tile.cuh"

namespace ssim_cuda {
namespace {

constexpr int kRowsPerThread = 8;

template <int TH> struct forward_config {
  static constexpr int rows = TH + 2 * SSIM_HALO;
  static constexpr int threads = kTileW * TH / kRowsPerThread;
  /* Two staged images, then five horizontally blurred statistics. */
  static constexpr size_t smem = (2 * rows * kPitch + 5 * rows * kTileW) * sizeof(float);
  /* Two blocks per multiprocessor where shared memory allows it (sm_80 and later). */
  static constexpr int min_blocks = TH >= 32 ? 2 : 1;
};

/*
 * Stages ROWS x kPitch pixels of both images from image pixel (iy0, ix0), zero outside the image,
 * each stored minus a centre c. The variances are differences of two nearly equal blurred moments
 * (s11 = G*(x^2) - mu1^2); centring the values first (the variances do not change when x is
 * shifted, and the window's weights sum to 1) keeps that cancellation small on bright flat
 * regions, so that the map stays within 1e-4 of a float64 reference, as the CPU backend does.
 * Centring pays only where windows lie mostly inside the image: in an image narrower than the
 * window the zero padding, which centring turns into -c, would dominate the statistics, so the
 * host passes c = 0 there (as the CPU backend does).
 * A warp stages whole rows: the row's bounds and base index once, three columns per lane.
 */
template <typename T, int ROWS, int THREADS>
__device__ __forceinline__ bool stage_images(float *__restrict__ s_x, float *__restrict__ s_y,
                                             const T *__restrict__ img1, const T *__restrict__ img2,
                                             int64_t iy0, int64_t ix0, int64_t height,
                                             int64_t width, float center) {
  constexpr int kWarps = THREADS / 32;
  const int lane = threadIdx.x % 32;
  bool col_ok[3];
#pragma unroll
  for (int q = 0; q < 3; q++)
    col_ok[q] = 32 * q + lane < kPitch && (uint64_t)(ix0 + 32 * q + lane) < (uint64_t)width;
  bool bad = false;
#pragma unroll 2
  for (int r = threadIdx.x / 32; r < ROWS; r += kWarps) {
    const int64_t iy = iy0 + r;
    const bool row_ok = (uint64_t)iy < (uint64_t)height;
    const int64_t base = iy * width + ix0 + lane;
    float x[3], y[3];
#pragma unroll
    for (int q = 0; q < 3; q++) {
      x[q] = 0.0f;
      y[q] = 0.0f;
      if (row_ok && col_ok[q]) {
        x[q] = to_unit(__ldg(img1 + base + 32 * q));
        y[q] = to_unit(__ldg(img2 + base + 32 * q));
      }
    }
#pragma unroll
    for (int q = 0; q < 3; q++) {
      if (32 * q + lane < kPitch) {
        s_x[r * kPitch + 32 * q + lane] = x[q] - center;
        s_y[r * kPitch + 32 * q + lane] = y[q] - center;
      }
      /* Only float input can hold NaN or infinity; v - v is NaN exactly for those. */
      bad |= (x[q] - x[q] != 0.0f) | (y[q] - y[q] != 0.0f);
    }
  }
  return bad;
}

/* SSIM of one pixel from its five blurred centred statistics (G*x', G*x'^2, G*y', G*y'^2,
 * G*x'y' with x' = x - center), with fused-ssim's clamps. */
struct pixel_terms {
  float mu1, mu2, A, B, Cn, D, S;
  bool clamped;
};

__device__ __forceinline__ pixel_terms ssim_pixel(const float (&st)[5], float center) {
  pixel_terms p;
  const float m1 = st[0], m2 = st[2];
  p.mu1 = m1 + center;
  p.mu2 = m2 + center;
  const float s11 = fmaxf(0.0f, st[1] - m1 * m1);
  const float s22 = fmaxf(0.0f, st[3] - m2 * m2);
  const float s12 = st[4] - m1 * m2;
  p.A = p.mu1 * p.mu1 + p.mu2 * p.mu2 + SSIM__C1;
  p.B = s11 + s22 + SSIM__C2;
  p.Cn = 2.0f * p.mu1 * p.mu2 + SSIM__C1;
  p.D = 2.0f * s12 + SSIM__C2;
  /* A >= C1 and B >= C2, so the fast division (2 ulp) is safe; its error is far below the
   * float32 rounding of the statistics themselves. */
  const float val = __fdividef(p.Cn * p.D, p.A * p.B);
  p.clamped = val < -1.0f || val > 1.0f;
  p.S = fmaxf(-1.0f, fminf(1.0f, val));
  return p;
}

template <int TH, bool TRAIN>
__global__ void __launch_bounds__(forward_config<TH>::threads, forward_config<TH>::min_blocks)
    forward_kernel(const ssim_cuda_geometry geo, const ssim_cuda_forward_args args,
                   int64_t tiles_x) {
  using cfg = forward_config<TH>;
  constexpr int ROWS = cfg::rows, THREADS = cfg::threads, M = kRowsPerThread;
  extern __shared__ float4 smem4[];
  float *s_x = reinterpret_cast<float *>(smem4);
  float *s_y = s_x + ROWS * kPitch;
  float *s_h = s_y + ROWS * kPitch;
  __shared__ float s_warp[THREADS / 32];

  const int64_t plane = blockIdx.y;
  const int64_t tile_y = blockIdx.x / tiles_x, tile_x = blockIdx.x % tiles_x;
  const int64_t my0 = tile_y * TH, mx0 = tile_x * kTileW;
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;
  const int64_t iy0 = my0 + geo.offset - SSIM_HALO, ix0 = mx0 + geo.offset - kLeft;

  bool bad = false;
  switch (geo.dtype) {
  case SSIM_DTYPE_U8:
    stage_images<uint8_t, ROWS, THREADS>(s_x, s_y,
                                         static_cast<const uint8_t *>(args.img1) + plane * img_px,
                                         static_cast<const uint8_t *>(args.img2) + plane * img_px,
                                         iy0, ix0, geo.height, geo.width, geo.center);
    break;
  case SSIM_DTYPE_U16:
    stage_images<uint16_t, ROWS, THREADS>(s_x, s_y,
                                          static_cast<const uint16_t *>(args.img1) + plane * img_px,
                                          static_cast<const uint16_t *>(args.img2) + plane * img_px,
                                          iy0, ix0, geo.height, geo.width, geo.center);
    break;
  default:
    bad = stage_images<float, ROWS, THREADS>(s_x, s_y,
                                             static_cast<const float *>(args.img1) + plane * img_px,
                                             static_cast<const float *>(args.img2) + plane * img_px,
                                             iy0, ix0, geo.height, geo.width, geo.center);
    break;
  }
  if (bad)
    *args.nonfinite = 1;
  __syncthreads();
  blur_rows<5, true, ROWS, THREADS>(s_x, s_h);
  __syncthreads();

  const int col = threadIdx.x % kTileW, group = threadIdx.x / kTileW;
  float acc[M][5];
  blur_column<5, M, ROWS>(s_h, col, group * M, acc);

  const int64_t mx = mx0 + col;
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < M; i++) {
    const int64_t my = my0 + group * M + i;
    if (my >= geo.map_h || mx >= geo.map_w)
      continue;
    const pixel_terms p = ssim_pixel(acc[i], geo.center);
    const int64_t idx = plane * map_px + my * geo.map_w + mx;
    sum += p.S;
    if (args.map != nullptr)
      args.map[idx] = p.S;
    if constexpr (TRAIN) {
      /* fused-ssim's partial derivatives of S (zero where S was clamped), times g = dL/dS.
       * One division: 1/(AB), and 1/A = B/(AB), 1/B = A/(AB). */
      const float g = args.grad_map != nullptr ? __ldg(args.grad_map + idx) : args.grad_scale;
      float d_mu1 = 0.0f, d_mu2 = 0.0f, d_s11 = 0.0f, d_s12 = 0.0f;
      if (!p.clamped) {
        const float r = __fdividef(1.0f, p.A * p.B);
        const float rA = p.B * r, rB = p.A * r;
        const float cd = 2.0f * p.Cn * p.D * r;
        d_mu1 = (p.mu2 * 2.0f * p.D) * r - (p.mu2 * 2.0f * p.Cn) * r - p.mu1 * cd * rA +
                p.mu1 * cd * rB;
        d_mu2 = (p.mu1 * 2.0f * p.D) * r - (p.mu1 * 2.0f * p.Cn) * r - p.mu2 * cd * rA +
                p.mu2 * cd * rB;
        d_s11 = (-p.Cn * p.D) * r * rB;
        d_s12 = (2.0f * p.Cn) * r;
      }
      float *d = args.deriv + idx;
      const int64_t stride = args.deriv_stride;
      d[0] = g * (args.deriv_mode == SSIM_CUDA_DERIV_IMG2 ? d_mu2 : d_mu1);
      d[stride] = g * d_s11;
      d[2 * stride] = g * d_s12;
      if (args.deriv_mode == SSIM_CUDA_DERIV_BOTH)
        d[3 * stride] = g * d_mu2;
    }
  }

  if (args.partials == nullptr)
    return;
    /* Each warp lies in one 32-wide half of the tile: reduce per warp, then per half, in a fixed
     * order so that repeated runs give the same bits. */
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    sum += __shfl_xor_sync(0xffffffffu, sum, off);
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0)
    s_warp[warp] = sum;
  __syncthreads();
  if (threadIdx.x < 2) {
    float half = 0.0f;
    for (int w = threadIdx.x; w < THREADS / 32; w += 2)
      half += s_warp[w];
    const int64_t tiles = gridDim.x;
    args.partials[(plane * tiles + blockIdx.x) * 2 + threadIdx.x] = half;
  }
}

constexpr int kFinalizeThreads = 256;

/* Sum over the block in a fixed tree; every thread gets the result. */
__device__ double block_sum(double v, double *s_red) {
  s_red[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int half = kFinalizeThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half)
      s_red[threadIdx.x] += s_red[threadIdx.x + half];
    __syncthreads();
  }
  const double total = s_red[0];
  __syncthreads();
  return total;
}

__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(const ssim_cuda_geometry geo, int tile_h, int64_t tiles_y, int64_t tiles_x,
                    const float *__restrict__ partials, double *__restrict__ scores,
                    double *__restrict__ channel_scores, float *__restrict__ block_means) {
  __shared__ double s_red[kFinalizeThreads];
  const int64_t pair = blockIdx.x;
  const int64_t per_plane = tiles_y * tiles_x * 2;
  const int64_t map_px = geo.map_h * geo.map_w;
  const float *pair_partials = partials + pair * geo.channels * per_plane;
  double total = 0.0;
  for (int c = 0; c < geo.channels; c++) {
    const float *p = pair_partials + c * per_plane;
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < per_plane; i += kFinalizeThreads)
      s += p[i];
    s = block_sum(s, s_red);
    total += s;
    if (threadIdx.x == 0)
      channel_scores[pair * geo.channels + c] = s / (double)map_px;
  }
  if (threadIdx.x == 0)
    scores[pair] = total / ((double)map_px * geo.channels);
  if (block_means == nullptr)
    return;

  /* Map block (by, bx) is half bx % 2 of tile column bx / 2, over SSIM_BLOCK / tile_h tile rows. */
  const int64_t nby = div_up(geo.map_h, SSIM_BLOCK), nbx = div_up(geo.map_w, SSIM_BLOCK);
  const int tile_rows = SSIM_BLOCK / tile_h;
  for (int64_t b = threadIdx.x; b < nby * nbx; b += kFinalizeThreads) {
    const int64_t by = b / nbx, bx = b % nbx;
    double s = 0.0;
    for (int c = 0; c < geo.channels; c++)
      for (int k = 0; k < tile_rows; k++) {
        const int64_t ty = by * tile_rows + k;
        if (ty < tiles_y)
          s += pair_partials[c * per_plane + (ty * tiles_x + bx / 2) * 2 + bx % 2];
      }
    const int64_t bh = min((int64_t)SSIM_BLOCK, geo.map_h - by * SSIM_BLOCK);
    const int64_t bw = min((int64_t)SSIM_BLOCK, geo.map_w - bx * SSIM_BLOCK);
    block_means[pair * nby * nbx + b] = (float)(s / ((double)geo.channels * bh * bw));
  }
}

template <int TH, bool TRAIN>
cudaError_t launch_forward(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                           cudaStream_t stream) {
  using cfg = forward_config<TH>;
  int64_t tiles_y, tiles_x;
  ssim_cuda_forward_tiles(&geo, TH, &tiles_y, &tiles_x);
  const int64_t tiles = tiles_y * tiles_x;
  if (tiles > INT32_MAX)
    return cudaErrorInvalidConfiguration;
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;
  const int64_t esize = geo.dtype == SSIM_DTYPE_U8 ? 1 : geo.dtype == SSIM_DTYPE_U16 ? 2 : 4;
  for (int64_t p0 = 0; p0 < args.planes; p0 += kMaxPlanesPerLaunch) {
    ssim_cuda_forward_args part = args;
    part.planes = min(args.planes - p0, (int64_t)kMaxPlanesPerLaunch);
    part.img1 = static_cast<const char *>(args.img1) + p0 * img_px * esize;
    part.img2 = static_cast<const char *>(args.img2) + p0 * img_px * esize;
    if (args.map != nullptr)
      part.map = args.map + p0 * map_px;
    if (args.partials != nullptr)
      part.partials = args.partials + p0 * tiles * 2;
    if (args.deriv != nullptr)
      part.deriv = args.deriv + p0 * map_px;
    if (args.grad_map != nullptr)
      part.grad_map = args.grad_map + p0 * map_px;
    const dim3 grid((unsigned)tiles, (unsigned)part.planes);
    forward_kernel<TH, TRAIN><<<grid, cfg::threads, cfg::smem, stream>>>(geo, part, tiles_x);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
      return err;
  }
  return cudaSuccess;
}

template <int TH> cudaError_t set_forward_smem() {
  cudaError_t err =
      cudaFuncSetAttribute(forward_kernel<TH, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           (int)forward_config<TH>::smem);
  if (err == cudaSuccess)
    err =
        cudaFuncSetAttribute(forward_kernel<TH, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)forward_config<TH>::smem);
  return err;
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

int ssim_cuda_forward_tile_h(int shared_per_block_optin) {
#ifdef SSIM_CUDA_FORCE_TILE_H
  /* A build-time override for tuning: 16 or 32. */
  if (SSIM_CUDA_FORCE_TILE_H == 16 || shared_per_block_optin >= (int)forward_config<32>::smem)
    return SSIM_CUDA_FORCE_TILE_H;
#endif
  /* 32-row tiles halve the share of halo rows but need about 79 KiB of shared memory; devices
   * with less (sm_75) take 16-row tiles. */
  return shared_per_block_optin >= (int)forward_config<32>::smem ? 32 : 16;
}

void ssim_cuda_forward_tiles(const ssim_cuda_geometry *geo, int tile_h, int64_t *tiles_y,
                             int64_t *tiles_x) {
  *tiles_y = div_up(geo->map_h, tile_h);
  *tiles_x = div_up(geo->map_w, kTileW);
}

cudaError_t ssim_cuda_forward_init(int tile_h) {
  return tile_h == 32 ? set_forward_smem<32>() : set_forward_smem<16>();
}

cudaError_t ssim_cuda_forward(const ssim_cuda_geometry *geo, int tile_h,
                              const ssim_cuda_forward_args *args, cudaStream_t stream) {
  const bool train = args->deriv != nullptr;
  if (tile_h == 32)
    return train ? launch_forward<32, true>(*geo, *args, stream)
                 : launch_forward<32, false>(*geo, *args, stream);
  return train ? launch_forward<16, true>(*geo, *args, stream)
               : launch_forward<16, false>(*geo, *args, stream);
}

cudaError_t ssim_cuda_finalize(const ssim_cuda_geometry *geo, int tile_h, int64_t pairs,
                               const float *partials, double *scores, double *channel_scores,
                               float *block_means, cudaStream_t stream) {
  int64_t tiles_y, tiles_x;
  ssim_cuda_forward_tiles(geo, tile_h, &tiles_y, &tiles_x);
  if (pairs > INT32_MAX)
    return cudaErrorInvalidConfiguration;
  finalize_kernel<<<(unsigned)pairs, kFinalizeThreads, 0, stream>>>(
      *geo, tile_h, tiles_y, tiles_x, partials, scores, channel_scores, block_means);
  return cudaGetLastError();
}
