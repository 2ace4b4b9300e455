/*
 * infer.cu: the forward kernel of inference: scores, block means and, when asked, the map.
 *
 * Inference needs four blurred statistics, not five: S depends on the two variances only through
 * their sum (B = s11 + s22 + C2), so x^2 and y^2 are blurred together as x^2 + y^2. With the
 * statistics G*x, G*y, G*(x^2 + y^2) and G*(xy), a pixel costs 2 x 4 x 11 = 88 FMAs of blur
 * where training's five statistics cost 110. (Clamping the summed variance at 0 instead of each
 * variance differs only where a variance is negative by rounding, by far less than float32
 * resolves in the statistics themselves.)
 *
 * A block walks tiles of 64 x TH map pixels (a persistent grid). For each tile:
 *  1. staging: both images' pixels around the tile, in their own dtype, are copied into shared
 *     memory by asynchronous copies (cp.async), issued one tile ahead so that they arrive while
 *     the block computes the current tile; widths that are not a multiple of 4 (or misaligned
 *     pointers) take synchronous element loads instead;
 *  2. vertical pass: each thread walks one staged column for 16 output rows, converting each
 *     pixel to a centred float as it reads it (see forward.cu on centring), forming x^2 + y^2 and
 *     xy in registers, and writes the four vertically blurred statistics to shared memory;
 *  3. horizontal pass: each thread blurs 4 adjacent outputs of a row per statistic from four
 *     16-byte loads, evaluates SSIM for them in registers, adds them to its sum and writes them
 *     to the map when one is asked for (one 16-byte store where the map allows it).
 * Blurring columns first makes the horizontal outputs the final ones, so nothing is written back
 * between the blur and the SSIM expression, and the products are formed once per staged read
 * instead of once per horizontal tap window.
 */
#include <type_traits>

#include "cuda_tile.cuh"

namespace ssim_cuda {
namespace {

constexpr int kVRows = 16;                     /* output rows per thread of the vertical pass */
constexpr int kChunk = 4;                      /* pixels per asynchronous copy */
constexpr int kStagePitch = kTileW + 16;       /* staged columns: the tile, its halo, alignment */
constexpr int kVCols = kTileW + 2 * SSIM_HALO; /* columns of the vertical pass */
constexpr int kVPitch = kTileW + 12;           /* kVCols rounded up to whole float4s */
constexpr int kStats = 4;                      /* G*x, G*y, G*(x^2 + y^2), G*(xy) */

template <typename T, int TH> struct infer_config {
  static constexpr int rows = TH + 2 * SSIM_HALO; /* staged rows */
  static constexpr int threads = TH == 32 ? 256 : 128;
  static constexpr int warps = threads / 32;
  /* Vertical passes: TH / kVRows row groups of kVCols columns, one per thread. */
  static constexpr int groups = TH / kVRows;
  /* Horizontal pass: a warp covers one 32-wide half of the tile, 4 rows of 8 items. */
  static constexpr int rows_per_pass = 4 * (warps / 2);
  static constexpr int passes = TH / rows_per_pass;
  static constexpr size_t stage_bytes = (size_t)rows * kStagePitch * sizeof(T); /* one image */
  static constexpr size_t v_bytes = (size_t)kStats * TH * kVPitch * sizeof(float);
  /* One staging buffer of both images: the next tile's pixels are copied into it during the
   * horizontal pass, once the vertical pass has read it. (A second buffer, copying during the
   * whole tile, measured slower: the larger block let only two blocks share a multiprocessor.) */
  static constexpr size_t smem = v_bytes + 2 * stage_bytes;
  static constexpr int min_blocks = 3;
  static_assert(groups * kVCols <= threads, "one vertical task per thread");
  static_assert(passes * rows_per_pass == TH, "the horizontal passes cover the tile");
  static_assert(stage_bytes % 16 == 0, "staging buffers keep 16-byte alignment");
};

/* A staged pixel as a float in its dtype's own scale. */
__device__ __forceinline__ float raw_float(float v) {
  return v;
}
__device__ __forceinline__ float raw_float(uint16_t v) {
  return (float)v;
}
__device__ __forceinline__ float raw_float(uint8_t v) {
  return (float)v;
}

/* Copies BYTES (4, 8 or 16) from global to shared memory without passing through registers
 * (cp.async, sm_80 and later; a plain copy before), or zero-fills them when `in` is false. */
template <int BYTES>
__device__ __forceinline__ void copy_async(void *dst, const void *src, bool in) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int src_bytes = in ? BYTES : 0;
  if constexpr (BYTES == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(src_bytes)
                 : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(src), "n"(BYTES),
                 "r"(src_bytes)
                 : "memory");
#else
  using chunk =
      typename std::conditional<BYTES == 16, uint4,
                                typename std::conditional<BYTES == 8, uint2, uint32_t>::type>::type;
  *static_cast<chunk *>(dst) = in ? *static_cast<const chunk *>(src) : chunk{};
#endif
}

__device__ __forceinline__ void copy_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/* Waits until at most `pending` of this thread's committed copy groups are still in flight. */
template <int pending> __device__ __forceinline__ void copy_async_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
#endif
}

/*
 * Stages rows oy .. oy + ROWS - 1, columns ox .. ox + kStagePitch - 1 of both images into s1
 * and s2 (ROWS x kStagePitch pixels of type T each), zero outside the image. With VEC the copies
 * are asynchronous chunks of 4 pixels (ox and the width are multiples of 4 and the images are
 * aligned, so a chunk is wholly inside the image or wholly outside it); without, plain loads of
 * one pixel each.
 */
template <typename T, int ROWS, int THREADS, bool VEC>
__device__ __forceinline__ void stage_tile(T *__restrict__ s1, T *__restrict__ s2,
                                           const T *__restrict__ img1, const T *__restrict__ img2,
                                           int64_t oy, int64_t ox, int64_t height, int64_t width) {
  constexpr int per = VEC ? kChunk : 1;
  constexpr int units = kStagePitch / per; /* copies per row */
  constexpr int step = THREADS / units;    /* rows per round of the block */
  const int u = threadIdx.x % units, r0 = threadIdx.x / units;
  if (r0 >= step)
    return;
  const int64_t ix = ox + u * per;
  const bool col_in = (uint64_t)ix < (uint64_t)width;
#pragma unroll 4
  for (int r = r0; r < ROWS; r += step) {
    const int64_t iy = oy + r;
    const bool in = col_in && (uint64_t)iy < (uint64_t)height;
    const int64_t off = in ? iy * width + ix : 0;
    T *d1 = s1 + r * kStagePitch + u * per, *d2 = s2 + r * kStagePitch + u * per;
    if constexpr (VEC) {
      copy_async<kChunk * sizeof(T)>(d1, img1 + off, in);
      copy_async<kChunk * sizeof(T)>(d2, img2 + off, in);
    } else {
      *d1 = in ? __ldg(img1 + off) : T(0);
      *d2 = in ? __ldg(img2 + off) : T(0);
    }
  }
}

/*
 * The vertical pass: thread task (column c of kVCols, row group g) blurs staged column c + shift
 * over output rows 16 g .. 16 g + 15 and writes G*x', G*y', G*(x'^2 + y'^2), G*(x'y') there into
 * v (kStats planes of TH x kVPitch). Threads beyond the tasks do nothing. The 64 tile columns
 * come first, a warp's lanes on consecutive columns of one group, then the 10 halo columns.
 */
template <typename T, int TH, int THREADS>
__device__ __forceinline__ void vertical_pass(const T *__restrict__ s1, const T *__restrict__ s2,
                                              int shift, float center, float *__restrict__ v) {
  using cfg = infer_config<T, TH>;
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
  constexpr float scale = unit_scale<T>();
  const int task = threadIdx.x;
  int g, c;
  if (task < kTileW * cfg::groups) {
    g = task / kTileW;
    c = task % kTileW;
  } else if (task < kVCols * cfg::groups) {
    constexpr int halo = kVCols - kTileW;
    g = (task - kTileW * cfg::groups) / halo;
    c = kTileW + (task - kTileW * cfg::groups) % halo;
  } else {
    return;
  }
  float acc[kVRows][kStats];
#pragma unroll
  for (int i = 0; i < kVRows; i++)
#pragma unroll
    for (int s = 0; s < kStats; s++)
      acc[i][s] = 0.0f;
  const int first = g * kVRows;
  const T *p1 = s1 + first * kStagePitch + c + shift;
  const T *p2 = s2 + first * kStagePitch + c + shift;
#pragma unroll
  for (int r = 0; r < kVRows + SSIM_WINDOW - 1; r++) {
    /* Integer pixels are scaled to [0, 1] and centred in one FMA. */
    const float x = fmaf(raw_float(p1[r * kStagePitch]), scale, -center);
    const float y = fmaf(raw_float(p2[r * kStagePitch]), scale, -center);
    const float st[kStats] = {x, y, fmaf(x, x, y * y), x * y};
#pragma unroll
    for (int i = 0; i < kVRows; i++) {
      const int t = r - i;
      if (t >= 0 && t < SSIM_WINDOW)
#pragma unroll
        for (int s = 0; s < kStats; s++)
          acc[i][s] = fmaf(w[t], st[s], acc[i][s]);
    }
  }
#pragma unroll
  for (int i = 0; i < kVRows; i++)
#pragma unroll
    for (int s = 0; s < kStats; s++)
      v[(s * TH + first + i) * kVPitch + c] = acc[i][s];
}

/* SSIM of one pixel from its four blurred centred statistics, with fused-ssim's clamps. */
__device__ __forceinline__ float ssim_value(float m1, float m2, float sq, float xy, float center) {
  const float mu1 = m1 + center, mu2 = m2 + center;
  const float s = fmaxf(0.0f, fmaf(-m2, m2, fmaf(-m1, m1, sq))); /* s11 + s22 */
  const float s12 = fmaf(-m1, m2, xy);
  const float A = fmaf(mu1, mu1, fmaf(mu2, mu2, SSIM__C1));
  const float B = s + SSIM__C2;
  const float Cn = fmaf(2.0f * mu1, mu2, SSIM__C1);
  const float D = fmaf(2.0f, s12, SSIM__C2);
  /* A >= C1 and B >= C2: A * B is a normal float, so the one-instruction reciprocal is safe. */
  return fmaxf(-1.0f, fminf(1.0f, Cn * D * fast_rcp(A * B)));
}

template <typename T, int TH, bool VEC>
__global__ void __launch_bounds__(infer_config<T, TH>::threads, infer_config<T, TH>::min_blocks)
    infer_kernel(const ssim_cuda_geometry geo, const ssim_cuda_forward_args args,
                 const tile_grid grid) {
  using cfg = infer_config<T, TH>;
  constexpr int ROWS = cfg::rows, THREADS = cfg::threads, WARPS = cfg::warps;
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
  extern __shared__ float4 smem4[];
  float *s_v = reinterpret_cast<float *>(smem4);
  T *s1 = reinterpret_cast<T *>(reinterpret_cast<char *>(smem4) + cfg::v_bytes);
  T *s2 = s1 + ROWS * kStagePitch;
  __shared__ float s_warp[2][WARPS]; /* per-warp sums, by tile parity */

  const T *img1 = static_cast<const T *>(args.img1);
  const T *img2 = static_cast<const T *>(args.img2);
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;
  /* The first staged column is the window's first column rounded down to a chunk: `shift`
   * columns left of it (3 for padding same, 0 for valid). */
  const int64_t win = geo.offset - SSIM_HALO;
  const int shift = (int)(win & (kChunk - 1));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = 8 * (warp & 1) + (lane & 7); /* float4 column group of the horizontal pass */
  const bool map_vec = (geo.map_w & 3) == 0 && (reinterpret_cast<uintptr_t>(args.map) & 15) == 0;

  auto stage = [&](const tile_walk &p) {
    stage_tile<T, ROWS, THREADS, VEC>(s1, s2, img1 + p.plane * img_px, img2 + p.plane * img_px,
                                      (int64_t)p.ty * TH + win,
                                      (int64_t)p.tx * kTileW + win - shift, geo.height, geo.width);
  };
  /* Threads 0 and 1 write the two half sums of a tile from the warp sums, in a fixed order. */
  auto write_partials = [&](int64_t t, int parity) {
    if (args.partials != nullptr && threadIdx.x < 2) {
      float half = 0.0f;
      for (int k = threadIdx.x; k < WARPS; k += 2)
        half += s_warp[parity][k];
      args.partials[t * 2 + threadIdx.x] = half;
    }
  };

  tile_walk tile(grid);
  if (tile.t >= grid.total)
    return;
  if constexpr (VEC) {
    stage(tile);
    copy_async_commit();
  }
  int parity = 0;
  bool nonfinite = false;
  for (;;) {
    tile_walk next = tile;
    next.advance(grid);
    if constexpr (VEC)
      copy_async_wait<0>();
    else
      stage(tile);
    __syncthreads();
    if (tile.t != blockIdx.x)
      write_partials(tile.t - gridDim.x, parity ^ 1);

    vertical_pass<T, TH, THREADS>(s1, s2, shift, geo.center, s_v);
    __syncthreads();
    /* The vertical pass was the staging buffer's only reader: the next tile's pixels can be
     * copied in while this one is blurred horizontally. */
    if (VEC && next.t < grid.total) {
      stage(next);
      copy_async_commit();
    }

    /* This thread's outputs: map columns mx .. mx + cols - 1 of rows my0 + row. */
    const int64_t mx = (int64_t)tile.tx * kTileW + 4 * group;
    const int cols = (int)max((int64_t)0, min((int64_t)4, geo.map_w - mx));
    float sum = 0.0f, check = 0.0f;
#pragma unroll
    for (int pass = 0; pass < cfg::passes; pass++) {
      const int row = (lane >> 3) + 4 * (warp >> 1) + pass * cfg::rows_per_pass;
      float st[kStats][4];
#pragma unroll
      for (int s = 0; s < kStats; s++) {
        const float4 *src =
            reinterpret_cast<const float4 *>(s_v + (s * TH + row) * kVPitch) + group;
        float in[16];
#pragma unroll
        for (int q = 0; q < 4; q++) {
          const float4 f = src[q];
          in[4 * q] = f.x;
          in[4 * q + 1] = f.y;
          in[4 * q + 2] = f.z;
          in[4 * q + 3] = f.w;
        }
#pragma unroll
        for (int o = 0; o < 4; o++) {
          float a = w[0] * in[o];
#pragma unroll
          for (int k = 1; k < SSIM_WINDOW; k++)
            a = fmaf(w[k], in[o + k], a);
          st[s][o] = a;
        }
      }
      float S[4];
#pragma unroll
      for (int o = 0; o < 4; o++) {
        S[o] = ssim_value(st[0][o], st[1][o], st[2][o], st[3][o], geo.center);
        /* A NaN or infinite input makes every window over it non-finite, and every input pixel
         * lies in some window of the map. Scaled so that finite values cannot overflow. */
        if constexpr (sizeof(T) == sizeof(float))
          check = fmaf(st[0][o], 0.015625f, fmaf(st[1][o], 0.015625f, check));
      }
      const int64_t my = (int64_t)tile.ty * TH + row;
      if (my < geo.map_h) {
        if (cols == 4) {
          sum += (S[0] + S[1]) + (S[2] + S[3]);
        } else {
#pragma unroll
          for (int o = 0; o < 3; o++)
            if (o < cols)
              sum += S[o];
        }
        if (args.map != nullptr) {
          float *dst = args.map + tile.plane * map_px + my * geo.map_w + mx;
          if (map_vec && cols == 4) {
            *reinterpret_cast<float4 *>(dst) = make_float4(S[0], S[1], S[2], S[3]);
          } else {
#pragma unroll
            for (int o = 0; o < 4; o++)
              if (o < cols)
                dst[o] = S[o];
          }
        }
      }
    }
    if constexpr (sizeof(T) == sizeof(float))
      nonfinite |= check - check != 0.0f;

      /* Each warp covers one half of the tile; its sum goes to s_warp, which the next iteration
       * (or the end) turns into the tile's two half sums after its first barrier. */
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0)
      s_warp[parity][warp] = sum;
    if (next.t >= grid.total)
      break;
    tile = next;
    parity ^= 1;
  }
  __syncthreads();
  write_partials(tile.t, parity);
  if (nonfinite)
    *args.nonfinite = 1;
}

template <typename T, int TH, bool VEC> cudaError_t prepare_infer(int sms, int *resident) {
  /* The persistent grid of the float kernel is the one the launches use: the integer kernels
   * need less shared memory, so at least as many of their blocks fit. */
  using cfg = infer_config<T, TH>;
  return prepare_persistent(infer_kernel<T, TH, VEC>, cfg::threads, cfg::smem, sms, resident);
}

template <typename T, int TH> cudaError_t prepare_infer_dtype(int sms, int *resident) {
  cudaError_t err = prepare_infer<T, TH, true>(sms, resident);
  if (err == cudaSuccess)
    err = prepare_infer<T, TH, false>(sms, nullptr);
  return err;
}

template <int TH> cudaError_t prepare_infer_all(int sms, int *resident) {
  cudaError_t err = prepare_infer_dtype<float, TH>(sms, resident);
  if (err == cudaSuccess)
    err = prepare_infer_dtype<uint16_t, TH>(sms, nullptr);
  if (err == cudaSuccess)
    err = prepare_infer_dtype<uint8_t, TH>(sms, nullptr);
  return err;
}

template <typename T, int TH>
cudaError_t launch_infer(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                         int resident, cudaStream_t stream) {
  using cfg = infer_config<T, TH>;
  int64_t tiles_y, tiles_x;
  ssim_cuda_forward_tiles(&geo, TH, &tiles_y, &tiles_x);
  const int64_t blocks = min(args.planes * tiles_y * tiles_x, (int64_t)resident);
  tile_grid grid;
  if (!make_tile_grid(args.planes, tiles_y, tiles_x, blocks, &grid))
    return cudaErrorInvalidValue;
  /* Chunks of 4 pixels need 4-pixel-aligned rows and images. */
  constexpr uintptr_t align = kChunk * sizeof(T);
  const bool vec = geo.width % kChunk == 0 && reinterpret_cast<uintptr_t>(args.img1) % align == 0 &&
                   reinterpret_cast<uintptr_t>(args.img2) % align == 0;
  if (vec)
    infer_kernel<T, TH, true>
        <<<(unsigned)blocks, cfg::threads, cfg::smem, stream>>>(geo, args, grid);
  else
    infer_kernel<T, TH, false>
        <<<(unsigned)blocks, cfg::threads, cfg::smem, stream>>>(geo, args, grid);
  return cudaGetLastError();
}

template <int TH>
cudaError_t launch_infer_dtype(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                               int resident, cudaStream_t stream) {
  switch (geo.dtype) {
  case SSIM_DTYPE_U8:
    return launch_infer<uint8_t, TH>(geo, args, resident, stream);
  case SSIM_DTYPE_U16:
    return launch_infer<uint16_t, TH>(geo, args, resident, stream);
  default:
    return launch_infer<float, TH>(geo, args, resident, stream);
  }
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

size_t ssim_cuda_infer_smem(int tile_h) {
  /* The float kernels need the most: their staged pixels are 4 bytes. */
  return tile_h == 32 ? infer_config<float, 32>::smem : infer_config<float, 16>::smem;
}

cudaError_t ssim_cuda_infer_init(int tile_h, int sms, int *resident) {
  return tile_h == 32 ? prepare_infer_all<32>(sms, resident) : prepare_infer_all<16>(sms, resident);
}

cudaError_t ssim_cuda_infer(const ssim_cuda_geometry *geo, int tile_h, int resident,
                            const ssim_cuda_forward_args *args, cudaStream_t stream) {
  return tile_h == 32 ? launch_infer_dtype<32>(*geo, *args, resident, stream)
                      : launch_infer_dtype<16>(*geo, *args, resident, stream);
}
