/*
 * forward.cu: the training forward kernel (scores, map and the derivative planes of the backward
 * pass), the dispatch between it and the inference kernel of infer.cu, and the final reduction
 * of both.
 *
 * A block computes tiles of the map, one after the other (a persistent grid): for each it stages
 * both images once with their halo, converting 8-bit, 16-bit or float input to float on the way,
 * blurs the five statistics (x, x^2, y, y^2, xy) separably in shared memory and registers, and
 * evaluates SSIM in registers, while the next tile's pixels are already on their way into
 * registers. What leaves the block is chosen per launch: the map, the two per-tile sums that give
 * the scores and block_means, and the derivative planes.
 */
#include "scores.cuh"

namespace ssim_cuda {
namespace {

/* Output rows per thread of the vertical pass: each staged row read from shared memory feeds
 * up to this many outputs held in registers. Overridable at build time for tuning. */
#ifdef SSIM_CUDA_FORCE_ROWS_PER_THREAD
constexpr int kRowsPerThread = SSIM_CUDA_FORCE_ROWS_PER_THREAD;
#else
constexpr int kRowsPerThread = 8;
#endif

template <int TH> struct forward_config {
  static constexpr int rows = TH + 2 * SSIM_HALO;
  static constexpr int threads = kTileW * TH / kRowsPerThread;
  /* Two staged images, then five horizontally blurred statistics. */
  static constexpr size_t smem = (2 * rows * kPitch + 5 * rows * kTileW) * sizeof(float);
  /* Two blocks per multiprocessor where shared memory allows it (sm_80 and later). */
  static constexpr int min_blocks = TH >= 32 ? 2 : 1;
};

/*
 * A block stages ROWS x kPitch pixels of both images around its tile, from image pixel
 * (iy0, ix0), zero outside the image, a warp per row and three columns per lane. The loads go
 * to registers first (tile_regs), issued for the next tile before the current one is blurred,
 * so that their latency hides behind arithmetic; store_tile then writes them to shared memory
 * minus a centre c. The variances are differences of two nearly equal blurred moments
 * (s11 = G*(x^2) - mu1^2); centring the values first (the variances do not change when x is
 * shifted, and the window's weights sum to 1) keeps that cancellation small on bright flat
 * regions, so that the map stays within 1e-4 of a float64 reference, as the CPU backend does.
 * Centring pays only where windows lie mostly inside the image: in an image narrower than the
 * window the zero padding, which centring turns into -c, would dominate the statistics, so the
 * host passes c = 0 there (as the CPU backend does).
 */
template <int ROWS, int THREADS> struct tile_regs {
  static constexpr int kWarps = THREADS / 32;
  static constexpr int kRows = (ROWS + kWarps - 1) / kWarps; /* staged rows per warp */
  /* The pixels as loaded: float bits, or the integer value. Converting them here would make the
   * thread wait for the loads at once, before the blur they are meant to hide behind. */
  uint32_t x[kRows][3], y[kRows][3];
};

template <typename T> __device__ __forceinline__ uint32_t raw_bits(T v) {
  return v;
}
template <> __device__ __forceinline__ uint32_t raw_bits(float v) {
  return __float_as_uint(v);
}

/* The loaded pixel as a float in the dtype's own scale (unscaled for integers). */
template <typename T> __device__ __forceinline__ float raw_value(uint32_t bits) {
  if constexpr (sizeof(T) == sizeof(float))
    return __uint_as_float(bits);
  else
    return (float)bits;
}

template <typename T, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile(tile_regs<ROWS, THREADS> &t, const T *__restrict__ img1,
                                          const T *__restrict__ img2, int64_t iy0, int64_t ix0,
                                          int64_t height, int64_t width) {
  using regs = tile_regs<ROWS, THREADS>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  bool col_ok[3];
#pragma unroll
  for (int q = 0; q < 3; q++)
    col_ok[q] = 32 * q + lane < kPitch && (uint64_t)(ix0 + 32 * q + lane) < (uint64_t)width;
#pragma unroll
  for (int j = 0; j < regs::kRows; j++) {
    const int r = warp + regs::kWarps * j;
    const int64_t iy = iy0 + r;
    const bool row_ok = r < ROWS && (uint64_t)iy < (uint64_t)height;
    const int64_t base = iy * width + ix0 + lane;
#pragma unroll
    for (int q = 0; q < 3; q++) {
      const bool ok = row_ok && col_ok[q];
      t.x[j][q] = ok ? raw_bits(__ldg(img1 + base + 32 * q)) : 0u;
      t.y[j][q] = ok ? raw_bits(__ldg(img2 + base + 32 * q)) : 0u;
    }
  }
}

/* Writes the loaded tile to shared memory, scaled to [0, 1] and centred; true when a value was
 * NaN or infinite (float input only). */
template <typename T, int ROWS, int THREADS>
__device__ __forceinline__ bool store_tile(const tile_regs<ROWS, THREADS> &t,
                                           float *__restrict__ s_x, float *__restrict__ s_y,
                                           float center) {
  using regs = tile_regs<ROWS, THREADS>;
  constexpr float scale = unit_scale<T>();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float check = 0.0f;
#pragma unroll
  for (int j = 0; j < regs::kRows; j++) {
    const int r = warp + regs::kWarps * j;
#pragma unroll
    for (int q = 0; q < 3; q++) {
      const float x = raw_value<T>(t.x[j][q]), y = raw_value<T>(t.y[j][q]);
      if (r < ROWS && 32 * q + lane < kPitch) {
        /* Integer pixels are scaled to [0, 1] and centred in one FMA. */
        s_x[r * kPitch + 32 * q + lane] = fmaf(x, scale, -center);
        s_y[r * kPitch + 32 * q + lane] = fmaf(y, scale, -center);
      }
      /* A sum of v / 64 over this thread's values (at most 36) is NaN or infinite exactly when
       * some v is: it cannot overflow for finite v, and NaN and infinity propagate (infinities
       * of both signs give NaN). */
      if constexpr (sizeof(T) == sizeof(float))
        check += 0.015625f * x + 0.015625f * y;
    }
  }
  return check - check != 0.0f;
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
  /* A >= C1 and B >= C2, so A * B is a normal float and a fast reciprocal (about 1 ulp) is
   * safe; its error is far below the float32 rounding of the statistics themselves. */
  const float val = p.Cn * p.D * fast_rcp(p.A * p.B);
  p.clamped = val < -1.0f || val > 1.0f;
  p.S = fmaxf(-1.0f, fminf(1.0f, val));
  return p;
}

/*
 * A persistent grid: each block walks the tiles t = blockIdx.x, + gridDim.x, ..., loading the
 * next tile's pixels into registers while it blurs the current one.
 */
template <typename T, int TH>
__global__ void __launch_bounds__(forward_config<TH>::threads, forward_config<TH>::min_blocks)
    forward_kernel(const ssim_cuda_geometry geo, const ssim_cuda_forward_args args, int64_t tiles_x,
                   int64_t tiles) {
  using cfg = forward_config<TH>;
  constexpr int ROWS = cfg::rows, THREADS = cfg::threads, M = kRowsPerThread;
  extern __shared__ float4 smem4[];
  float *s_x = reinterpret_cast<float *>(smem4);
  float *s_y = s_x + ROWS * kPitch;
  float *s_h = s_y + ROWS * kPitch;
  __shared__ float s_warp[THREADS / 32];

  const T *img1 = static_cast<const T *>(args.img1);
  const T *img2 = static_cast<const T *>(args.img2);
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;
  const int64_t total = args.planes * tiles;
  const int col = threadIdx.x % kTileW, group = threadIdx.x / kTileW;

  tile_regs<ROWS, THREADS> next;
  int64_t t = blockIdx.x;
  tile_pos next_pos = tile_at(t, tiles, tiles_x, TH);
  if (t < total)
    load_tile<T, ROWS, THREADS>(next, img1 + next_pos.plane * img_px,
                                img2 + next_pos.plane * img_px,
                                next_pos.my0 + geo.offset - SSIM_HALO,
                                next_pos.mx0 + geo.offset - kLeft, geo.height, geo.width);
  for (; t < total; t += gridDim.x) {
    const tile_pos pos = next_pos;
    if (store_tile<T, ROWS, THREADS>(next, s_x, s_y, geo.center))
      *args.nonfinite = args.call;
    __syncthreads();
    if (t + gridDim.x < total) {
      next_pos = tile_at(t + gridDim.x, tiles, tiles_x, TH);
      load_tile<T, ROWS, THREADS>(next, img1 + next_pos.plane * img_px,
                                  img2 + next_pos.plane * img_px,
                                  next_pos.my0 + geo.offset - SSIM_HALO,
                                  next_pos.mx0 + geo.offset - kLeft, geo.height, geo.width);
    }
    blur_rows<5, true, ROWS, THREADS>(s_x, s_h);
    __syncthreads();

    float acc[M][5];
    blur_column<5, M, ROWS>(s_h, col, group * M, acc);

    /* Outputs of this thread: map column mx0 + col, rows my0 + group * M + i for i < rows. */
    const int64_t first = pos.my0 + group * M;
    const int rows = pos.mx0 + col < geo.map_w ? (int)min((int64_t)M, geo.map_h - first) : 0;
    const int64_t idx0 = pos.plane * map_px + first * geo.map_w + pos.mx0 + col;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < M; i++) {
      if (i >= rows)
        break;
      const pixel_terms p = ssim_pixel(acc[i], geo.center);
      const int64_t idx = idx0 + i * geo.map_w;
      sum += p.S;
      if (args.map != nullptr)
        args.map[idx] = p.S;
      {
        /* fused-ssim's partial derivatives of S (zero where S was clamped), times g = dL/dS.
         * One division: 1/(AB), and 1/A = B/(AB), 1/B = A/(AB). */
        const float g = args.grad_map != nullptr ? __ldg(args.grad_map + idx) : args.grad_scale;
        float d_mu1 = 0.0f, d_mu2 = 0.0f, d_s11 = 0.0f, d_s12 = 0.0f;
        if (!p.clamped) {
          const float r = fast_rcp(p.A * p.B);
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

    if (args.plane_sums != nullptr) { /* scores asked for (block means need them too) */
      /* Each warp lies in one 32-wide half of the tile: reduce per warp, then per half, in a
       * fixed order so that repeated runs give the same bits. */
#pragma unroll
      for (int off = 16; off > 0; off >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, off);
      if (threadIdx.x % 32 == 0)
        s_warp[threadIdx.x / 32] = sum;
      __syncthreads();
      if (threadIdx.x < 2) {
        float half = 0.0f;
        for (int w = threadIdx.x; w < THREADS / 32; w += 2)
          half += s_warp[w];
        if (args.partials != nullptr)
          args.partials[t * 2 + threadIdx.x] = half;
        add_to_plane_sum(args, pos.plane, fixed_point(half, geo.sum_scale));
      }
    }
    /* The next tile overwrites the staged pixels, the blurred rows and s_warp. */
    __syncthreads();
  }
}

constexpr int kFinalizeThreads = 256;

/*
 * Thread `id` of the grid: pair `id`'s scores (score_pair), and with block means, every
 * (gridDim.x * blockDim.x)-th block mean of all the pairs from entry `id`.
 */
__global__ void __launch_bounds__(kFinalizeThreads)
    finalize_kernel(const ssim_cuda_geometry geo, const ssim_cuda_partials layout, int64_t pairs,
                    const float *__restrict__ partials, unsigned long long *plane_sums,
                    int64_t sum_stride, int sum_slots, double *__restrict__ scores,
                    double *__restrict__ channel_scores, float *__restrict__ block_means,
                    const unsigned *nonfinite, unsigned call, unsigned *flag_copy) {
  wait_for_prior_grid();
  const int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  /* A NaN or infinite input makes the call's scores NaN (the caller that waits for them reports
   * the error instead). */
  const unsigned flag = *nonfinite;
  if (flag_copy != nullptr && id == 0)
    *flag_copy = flag;
  if (id < pairs)
    score_pair(geo, id, plane_sums, sum_stride, sum_slots, scores, channel_scores, flag == call);
  if (block_means == nullptr)
    return;

  /* A block's mean: its pieces of every plane of its pair, in plane and piece order. */
  const int channels = geo.channels;
  const int64_t per_plane = layout.piece_rows * layout.pitch;
  const int64_t nby = div_up(geo.map_h, SSIM_BLOCK), nbx = div_up(geo.map_w, SSIM_BLOCK);
  const int64_t per_pair = nby * nbx;
  for (int64_t e = id; e < pairs * per_pair; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pair = e / per_pair, b = e - pair * per_pair;
    const int64_t by = b / nbx, bx = b % nbx;
    const float *pair_partials = partials + pair * channels * per_plane;
    double sum = 0.0;
    for (int k = 0; k < channels; k++)
      for (int piece = 0; piece < layout.pieces; piece++) {
        const int64_t row = by * layout.pieces + piece;
        if (row < layout.piece_rows)
          sum += pair_partials[k * per_plane + row * layout.pitch + bx];
      }
    const int64_t bh = min((int64_t)SSIM_BLOCK, geo.map_h - by * SSIM_BLOCK);
    const int64_t bw = min((int64_t)SSIM_BLOCK, geo.map_w - bx * SSIM_BLOCK);
    block_means[e] = (float)(sum / ((double)channels * bh * bw));
  }
}

template <typename T, int TH>
cudaError_t launch_forward(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                           int resident_blocks, cudaStream_t stream) {
  using cfg = forward_config<TH>;
  const int64_t tiles_y = div_up(geo.map_h, TH), tiles_x = div_up(geo.map_w, kTileW);
  const int64_t total = args.planes * tiles_y * tiles_x;
  const int64_t blocks = min(total, (int64_t)resident_blocks);
  forward_kernel<T, TH><<<(unsigned)blocks, cfg::threads, cfg::smem, stream>>>(geo, args, tiles_x,
                                                                               tiles_y * tiles_x);
  return cudaGetLastError();
}

template <int TH>
cudaError_t launch_forward_dtype(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                                 int resident_blocks, cudaStream_t stream) {
  switch (geo.dtype) {
  case SSIM_DTYPE_U8:
    return launch_forward<uint8_t, TH>(geo, args, resident_blocks, stream);
  case SSIM_DTYPE_U16:
    return launch_forward<uint16_t, TH>(geo, args, resident_blocks, stream);
  default:
    return launch_forward<float, TH>(geo, args, resident_blocks, stream);
  }
}

/* Raises the shared memory limit of one kernel and counts how many of its blocks fit on the
 * whole device at once, the size of its persistent grid. */
template <typename T, int TH> cudaError_t prepare_forward(int sms, int *resident) {
  using cfg = forward_config<TH>;
  return prepare_persistent(forward_kernel<T, TH>, cfg::threads, cfg::smem, sms, resident);
}

template <int TH> cudaError_t prepare_forward_all(int sms, int *resident) {
  int unused[2] = {0, 0};
  cudaError_t err = prepare_forward<float, TH>(sms, resident);
  if (err == cudaSuccess)
    err = prepare_forward<uint8_t, TH>(sms, &unused[0]);
  if (err == cudaSuccess)
    err = prepare_forward<uint16_t, TH>(sms, &unused[1]);
  return err;
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

int ssim_cuda_forward_tile_h(int shared_per_block_optin) {
  /* 32-row tiles halve the share of halo rows but need about 77 KiB of shared memory; devices
   * with less (sm_75) take 16-row tiles. */
  const size_t need32 = forward_config<32>::smem;
#ifdef SSIM_CUDA_FORCE_TILE_H
  /* A build-time override for tuning: 16 or 32. */
  if (SSIM_CUDA_FORCE_TILE_H == 16 || (size_t)shared_per_block_optin >= need32)
    return SSIM_CUDA_FORCE_TILE_H;
#endif
  return (size_t)shared_per_block_optin >= need32 ? 32 : 16;
}

void ssim_cuda_forward_partials(const ssim_cuda_geometry *geo, int tile_h, bool training,
                                ssim_cuda_partials *layout) {
  if (!training) {
    ssim_cuda_infer_partials(geo, layout);
    return;
  }
  /* A training tile is tile_h rows of two 32-wide blocks; its two half sums are adjacent. */
  layout->pieces = SSIM_BLOCK / tile_h;
  layout->piece_rows = div_up(geo->map_h, tile_h);
  layout->pitch = 2 * div_up(geo->map_w, kTileW);
}

cudaError_t ssim_cuda_forward_init(int tile_h, int sms, int shared_optin,
                                   ssim_cuda_resident *resident) {
  cudaError_t err = ssim_cuda_infer_init(sms, shared_optin, resident);
  if (err == cudaSuccess)
    err = tile_h == 32 ? prepare_forward_all<32>(sms, &resident->train)
                       : prepare_forward_all<16>(sms, &resident->train);
  return err;
}

cudaError_t ssim_cuda_forward(const ssim_cuda_geometry *geo, int tile_h,
                              const ssim_cuda_resident *resident,
                              const ssim_cuda_forward_args *args, cudaStream_t stream) {
  if (args->deriv == nullptr)
    return ssim_cuda_infer(geo, resident, args, stream);
  return tile_h == 32 ? launch_forward_dtype<32>(*geo, *args, resident->train, stream)
                      : launch_forward_dtype<16>(*geo, *args, resident->train, stream);
}

bool ssim_cuda_finalize_can_wait() {
  bool sm90 = false;
  if (has_sm90_code(finalize_kernel, &sm90) != cudaSuccess)
    (void)cudaGetLastError();
  return sm90;
}

cudaError_t ssim_cuda_finalize(const ssim_cuda_geometry *geo, const ssim_cuda_partials *layout,
                               int64_t pairs, const float *partials, unsigned long long *plane_sums,
                               int64_t sum_stride, int sum_slots, double *scores,
                               double *channel_scores, float *block_means,
                               const unsigned *nonfinite, unsigned call, unsigned *flag_copy,
                               cudaStream_t stream, bool early) {
  /* A thread a pair; with block means, enough blocks to spread them (a grid-stride loop past
   * that). */
  int64_t blocks = div_up(pairs, (int64_t)kFinalizeThreads);
  if (block_means != nullptr) {
    const int64_t means = pairs * div_up(geo->map_h, SSIM_BLOCK) * div_up(geo->map_w, SSIM_BLOCK);
    blocks = max(blocks, min(div_up(means, (int64_t)kFinalizeThreads), (int64_t)4096));
  }
  if (blocks > INT32_MAX)
    return cudaErrorInvalidConfiguration;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((unsigned)blocks);
  config.blockDim = dim3(kFinalizeThreads);
  config.stream = stream;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = early ? 1 : 0;
  return cudaLaunchKernelEx(&config, finalize_kernel, *geo, *layout, pairs, partials, plane_sums,
                            sum_stride, sum_slots, scores, channel_scores, block_means, nonfinite,
                            call, flag_copy);
}
