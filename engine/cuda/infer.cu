/*
 * infer.cu: the forward kernel of inference: scores, block means and, when asked, the map.
 *
 * The map is cut into vertical strips SW map columns wide. A block walks down a strip: each of
 * its first SW + 10 threads owns one image column and keeps, in registers, the vertical blur of
 * the four statistics for the 11 output rows whose windows cover the current input row (a sliding
 * window: each input row is loaded, converted and multiplied out once, and completes one output
 * row). The pixels of a batch of 11 input rows are copied into shared memory first, in their own
 * dtype, by asynchronous 16-byte copies (cp.async; plain loads where rows are not 16-byte
 * aligned), issued while the previous batch is blurred horizontally. The vertical pass turns a
 * batch into 11 completed rows of vertically blurred statistics in shared memory; then every
 * thread blurs 4 adjacent outputs of one or two of those rows horizontally, evaluates SSIM and
 * adds it to its sum. Rows of one strip need no halo rows but the 10 rows that start a walk, and
 * a batch costs two barriers.
 *
 * The work is balanced across a persistent grid (strip_plan): the strips of all planes are put
 * in order, and each block takes an equal share of their rows, cut on whole units of 32 rows of
 * one strip (the rows of the 32 x 32 blocks of block_means); a share crosses into the next strip
 * (and plane) where it must, each piece of it a walk of its own. Every output group stores the sum
 * of its 4 outputs per row in shared memory, and once a unit's rows are all done one warp adds them
 * per 32 x 32 block in a fixed order (8 groups along each row, then a fixed tree over the 32
 * rows), so a block's sum does not depend on how the work was cut, on the launch, or on timing.
 */
#include "infer_common.cuh"

namespace ssim_cuda {
namespace {

constexpr int kRowLanes = 6; /* threads per column group: rows k and k + 6 of a batch */
constexpr int kStageRows = kWarm + kBatch; /* a walk stages its first two steps at once */

template <typename T, int SW> struct strip_config {
  static constexpr int groups = SW / 4;              /* 4-output column groups of a row */
  static constexpr int threads = groups * kRowLanes; /* 96, 192 or 288 */
  static constexpr int cols = SW + 2 * SSIM_HALO;    /* image columns of the vertical pass */
  /* Staged pixels: a row starts up to chunk - 1 columns left of the first vertical column, so
   * that 16-byte copies stay aligned in the image. */
  static constexpr int chunk = 16 / (int)sizeof(T);
  static constexpr int stage_pitch = (cols + chunk - 1 + chunk - 1) / chunk * chunk;
  static constexpr int stage_elems = kStageRows * stage_pitch; /* one image's staged rows */
  /* Floats per row of blurred statistics: the last group reads 16 floats from column SW - 4. */
  static constexpr int pitch = SW + 12;
  static constexpr int stat_floats = kStats * kBatch * pitch;
  /* Row sums of a unit: SSIM_BLOCK rows of `groups` floats. */
  static constexpr int row_sum_floats = SSIM_BLOCK * groups;
  /* The staged pixels of both images, a batch of statistics, the row sums of two units. */
  static constexpr size_t smem = 2 * (size_t)stage_elems * sizeof(T) +
                                 ((size_t)stat_floats + 2 * (size_t)row_sum_floats) * sizeof(float);
  /* 18 warps per multiprocessor: 96 registers a thread. */
  static constexpr int min_blocks = 18 * 32 / threads;
  static constexpr int blocks_of_32 = SW / SSIM_BLOCK; /* block columns per strip */
  static_assert(cols <= threads, "one image column per thread");
  static_assert(stage_pitch / chunk <= threads, "one chunk column per thread at least");
  static_assert(pitch % 4 == 0 && 4 * (groups - 1) + 16 <= pitch, "whole float4 reads");
  static_assert(2 * stage_elems * sizeof(T) % 16 == 0, "the statistics stay 16-byte aligned");
};

/* Copies 16 bytes from global to shared memory without passing through registers (cp.async,
 * sm_80 and later; a plain copy before), or zero-fills them when `in` is false. */
__device__ __forceinline__ void copy16_async(void *dst, const void *src, bool in) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int src_bytes = in ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes)
               : "memory");
#else
  *static_cast<uint4 *>(dst) = in ? *static_cast<const uint4 *>(src) : uint4{};
#endif
}

__device__ __forceinline__ void copy_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

/* Waits until this thread's committed copies have landed. */
__device__ __forceinline__ void copy_async_wait_all() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

/* The four statistics of a staged pixel pair, centred; `check` accumulates v / 64 of float input
 * (NaN or infinite exactly when some v is, and free of overflow over the rows of one batch). */
template <typename T>
__device__ __forceinline__ void statistics(T xv, T yv, float center, float (&st)[kStats],
                                           float &check) {
  constexpr float scale = unit_scale<T>();
  const float xr = static_cast<float>(xv), yr = static_cast<float>(yv);
  if constexpr (sizeof(T) == sizeof(float))
    check = fmaf(xr, 0.015625f, fmaf(yr, 0.015625f, check));
  /* Integer pixels are scaled to [0, 1] and centred in one FMA (see forward.cu on centring). */
  const float x = fmaf(xr, scale, -center), y = fmaf(yr, scale, -center);
  st[0] = x;
  st[1] = y;
  st[2] = fmaf(x, x, y * y);
  st[3] = x * y;
}

/* The first 10 input rows of a walk, staged rows 0 .. 9: they complete no output row. */
template <typename T, int SP, int P = 0>
__device__ __forceinline__ void warm_up(float (&acc)[kBatch][kStats], const T *__restrict__ sx,
                                        const T *__restrict__ sy, float center, float &check) {
  if constexpr (P < kWarm) {
    constexpr float no_bias[kStats] = {};
    float st[kStats];
    statistics<T>(sx[P * SP], sy[P * SP], center, st, check);
    slide<P, true>(acc, st, no_bias);
    warm_up<T, SP, P + 1>(acc, sx, sy, center, check);
  }
}

/* Input rows 10 + 11m + k, k = 0 .. 10, of a walk (staged row k): each completes output row
 * 11m + k, stored as row k of `out` (kStats planes of kBatch x PITCH). A walk's last batch runs
 * whole: the rows past its end cost less than a test per row. */
template <typename T, int SP, int PITCH, int K = 0>
__device__ __forceinline__ void
vertical_batch(float (&acc)[kBatch][kStats], const T *__restrict__ sx, const T *__restrict__ sy,
               float center, float &check, float *__restrict__ out) {
  if constexpr (K < kBatch) {
    constexpr float no_bias[kStats] = {};
    float st[kStats];
    statistics<T>(sx[K * SP], sy[K * SP], center, st, check);
    slide<(K + kWarm) % kBatch, false>(acc, st, no_bias);
#pragma unroll
    for (int s = 0; s < kStats; s++)
      out[(s * kBatch + K) * PITCH] = acc[K][s];
    vertical_batch<T, SP, PITCH, K + 1>(acc, sx, sy, center, check, out);
  }
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

/*
 * The horizontal pass of one output row of a batch for this thread's column group: blurs the 16
 * statistics around its 4 outputs, evaluates SSIM, writes the map when asked, and returns the
 * sum of the outputs inside the map.
 */
template <int PITCH>
__device__ __forceinline__ float horizontal_item(const float *__restrict__ stats, int k, int group,
                                                 float center, float *__restrict__ map, int cols,
                                                 bool map_vec) {
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
  float st[kStats][4];
#pragma unroll
  for (int s = 0; s < kStats; s++) {
    const float4 *src = reinterpret_cast<const float4 *>(stats + (s * kBatch + k) * PITCH) + group;
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
      for (int t = 1; t < SSIM_WINDOW; t++)
        a = fmaf(w[t], in[o + t], a);
      st[s][o] = a;
    }
  }
  float S[4];
#pragma unroll
  for (int o = 0; o < 4; o++)
    S[o] = ssim_value(st[0][o], st[1][o], st[2][o], st[3][o], center);
  if (map != nullptr) {
    if (map_vec && cols == 4) {
      *reinterpret_cast<float4 *>(map) = make_float4(S[0], S[1], S[2], S[3]);
    } else {
#pragma unroll
      for (int o = 0; o < 4; o++)
        if (o < cols)
          map[o] = S[o];
    }
  }
  if (cols == 4)
    return (S[0] + S[1]) + (S[2] + S[3]);
  float sum = 0.0f;
#pragma unroll
  for (int o = 0; o < 3; o++)
    if (o < cols)
      sum += S[o];
  return sum;
}

/*
 * One walk: map rows r0 .. r1 - 1 of one strip of one plane, whole 32-row units (r0 a multiple
 * of 32, r1 too or the map's end: the plan's granule is SSIM_BLOCK). VEC: the images' rows are
 * 16-byte aligned (row bytes and image addresses multiples of 16), so rows are staged with 16-byte
 * asynchronous copies; otherwise with plain loads, one pixel per thread and row.
 */
template <typename T, int SW, bool VEC> struct strip_walk {
  using cfg = strip_config<T, SW>;
  static constexpr int SP = cfg::stage_pitch;
  const ssim_cuda_geometry &geo;
  const ssim_cuda_forward_args &args;
  const strip_plan &plan;
  T *s_x, *s_y;    /* staged pixels, kStageRows x SP each */
  float *s_stats;  /* kStats x kBatch x pitch */
  float *s_rowsum; /* 2 units x SSIM_BLOCK rows x groups */
  int64_t plane, strip, r0, r1;
  int rows;             /* r1 - r0 */
  const T *img1, *img2; /* the plane */
  int64_t x_stage;      /* image column of staged column 0 */
  int shift;            /* staged column of this thread's vertical column */
  int group, lane_row;  /* horizontal pass: column group and first row of a batch */
  float *map_row0;      /* map pixel (r0, this group's first column), or NULL */
  int cols;             /* outputs of this group inside the map (0 .. 4) */
  bool map_vec;
  int64_t reduced; /* first unit not yet written out */
  float check;
  bool bad;

  __device__ __forceinline__ strip_walk(const ssim_cuda_geometry &g,
                                        const ssim_cuda_forward_args &a, const strip_plan &p,
                                        char *smem, int64_t plane_, int64_t strip_, int64_t r0_,
                                        int64_t r1_)
      : geo(g), args(a), plan(p), plane(plane_), strip(strip_), r0(r0_), r1(r1_),
        reduced(r0_ / SSIM_BLOCK), check(0.0f), bad(false) {
    rows = (int)(r1 - r0);
    s_x = reinterpret_cast<T *>(smem);
    s_y = s_x + cfg::stage_elems;
    s_stats = reinterpret_cast<float *>(s_y + cfg::stage_elems);
    s_rowsum = s_stats + cfg::stat_floats;
    const int64_t plane_px = plane * geo.height * geo.width;
    img1 = static_cast<const T *>(args.img1) + plane_px;
    img2 = static_cast<const T *>(args.img2) + plane_px;
    const int64_t x0 = strip * SW + geo.offset - SSIM_HALO; /* image column of thread 0 */
    shift = VEC ? (int)(x0 & (cfg::chunk - 1)) : 0;
    x_stage = x0 - shift;
    group = threadIdx.x % cfg::groups;
    lane_row = threadIdx.x / cfg::groups;
    const int64_t mx = strip * SW + 4 * group;
    cols = (int)max((int64_t)0, min((int64_t)4, geo.map_w - mx));
    map_row0 = args.map != nullptr ? args.map + (plane * geo.map_h + r0) * geo.map_w + mx : nullptr;
    map_vec = (geo.map_w & 3) == 0 && (reinterpret_cast<uintptr_t>(args.map) & 15) == 0;
  }

  /* Stages input rows first .. first + n - 1 of the walk into staged rows 0 .. n - 1, zero
   * outside the image. With VEC the copies are only issued: staged() makes them visible. */
  __device__ __forceinline__ void stage(int first, int n) {
    const int64_t iy0 = r0 + geo.offset - SSIM_HALO + first;
    if constexpr (VEC) {
      /* The width is a multiple of the chunk and x_stage is aligned to it, so each chunk is
       * wholly inside the image or wholly outside. A thread copies one chunk column, every
       * `step`-th row. */
      constexpr int units = SP / cfg::chunk, step = cfg::threads / units;
      const int c = threadIdx.x % units;
      const int64_t ix = x_stage + c * cfg::chunk;
      const bool col_in = (uint64_t)ix < (uint64_t)geo.width;
      int64_t iy = iy0 + threadIdx.x / units;
      int64_t off = iy * geo.width + ix;
      /* Threads past step x units would repeat rows the first ones copy. */
      const int first_row = threadIdx.x < step * units ? (int)threadIdx.x / units : n;
      for (int r = first_row; r < n; r += step) {
        const bool in = col_in && (uint64_t)iy < (uint64_t)geo.height;
        copy16_async(s_x + r * SP + c * cfg::chunk, img1 + (in ? off : 0), in);
        copy16_async(s_y + r * SP + c * cfg::chunk, img2 + (in ? off : 0), in);
        iy += step;
        off += step * geo.width;
      }
      copy_async_commit();
    } else {
      const int t = threadIdx.x;
      const int64_t ix = x_stage + t;
      if (t >= cfg::cols)
        return;
      const bool col_in = (uint64_t)ix < (uint64_t)geo.width;
#pragma unroll 4
      for (int r = 0; r < n; r++) {
        const int64_t iy = iy0 + r;
        const bool in = col_in && (uint64_t)iy < (uint64_t)geo.height;
        const int64_t off = in ? iy * geo.width + ix : 0;
        s_x[r * SP + t] = in ? __ldg(img1 + off) : T(0);
        s_y[r * SP + t] = in ? __ldg(img2 + off) : T(0);
      }
    }
  }

  __device__ __forceinline__ void staged() {
    if constexpr (VEC)
      copy_async_wait_all();
    __syncthreads();
  }

  /* The horizontal pass of batch row k (walk row j): SSIM of this group's 4 outputs, their sum
   * stored as the group's row sum in the unit (0 for a group outside the map). */
  __device__ __forceinline__ void add_row(int k, int j) {
    if (j >= rows)
      return;
    const int64_t my = r0 + j;
    float sum = 0.0f;
    if (cols > 0) {
      float *map = map_row0 != nullptr ? map_row0 + (int64_t)j * geo.map_w : nullptr;
      sum = horizontal_item<cfg::pitch>(s_stats, k, group, geo.center, map, cols, map_vec);
    }
    const int64_t u = my / SSIM_BLOCK;
    s_rowsum[((u & 1) * SSIM_BLOCK + (my & (SSIM_BLOCK - 1))) * cfg::groups + group] = sum;
  }

  /* The last warp adds unit u's row sums per 32 x 32 block: lane i takes row i across the
   * block's 8 groups, then the lanes are added in a fixed butterfly. Rows past the map count 0. */
  __device__ __forceinline__ void reduce_unit(int64_t u) {
    if (threadIdx.x / 32 != cfg::threads / 32 - 1)
      return;
    const int lane = threadIdx.x % 32;
    const bool row_in = u * SSIM_BLOCK + lane < geo.map_h;
    const float *row = s_rowsum + ((u & 1) * SSIM_BLOCK + lane) * cfg::groups;
#pragma unroll
    for (int cb = 0; cb < cfg::blocks_of_32; cb++) {
      float s = 0.0f;
      if (row_in) {
#pragma unroll
        for (int g = 0; g < 8; g++)
          s += row[cb * 8 + g];
      }
#pragma unroll
      for (int off = 16; off > 0; off >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, off);
      const int64_t bx = strip * cfg::blocks_of_32 + cb;
      if (lane == 0) {
        if (args.partials != nullptr && bx < plan.partial_pitch)
          args.partials[(plane * plan.block_rows + u) * plan.partial_pitch + bx] = s;
        add_to_plane_sum(args, plane, fixed_point(s, geo.sum_scale));
      }
    }
  }

  __device__ __forceinline__ void run() {
    const bool vertical = threadIdx.x < cfg::cols;
    const T *sx = s_x + threadIdx.x + shift, *sy = s_y + threadIdx.x + shift;
    float acc[kBatch][kStats];
    /* The first 10 input rows and the first batch arrive together: staged rows 0 .. 20. */
    stage(0, kStageRows);
    staged();
    if (vertical)
      warm_up<T, SP>(acc, sx, sy, geo.center, check);
    for (int first = 0;; first += kBatch) {
      if (vertical) {
        const int base = first == 0 ? kWarm : 0;
        vertical_batch<T, SP, cfg::pitch>(acc, sx + base * SP, sy + base * SP, geo.center, check,
                                          s_stats + threadIdx.x);
        if constexpr (sizeof(T) == sizeof(float)) {
          bad |= check - check != 0.0f;
          check = 0.0f;
        }
      }
      __syncthreads();
      /* The staged rows are read: the next batch's copies overlap the horizontal pass. */
      const bool more = first + kBatch < rows;
      if (more)
        stage(kWarm + first + kBatch, kBatch);
      /* Rows before `first` are all done: a unit that ends there can be written out. */
      if (r0 + first >= min((reduced + 1) * SSIM_BLOCK, r1)) {
        reduce_unit(reduced);
        reduced++;
      }
      add_row(lane_row, first + lane_row);
      if (lane_row + kRowLanes < kBatch)
        add_row(lane_row + kRowLanes, first + lane_row + kRowLanes);
      if (!more)
        break;
      staged();
    }
    __syncthreads();
    const int64_t last = (r1 - 1) / SSIM_BLOCK;
    for (int64_t u = reduced; u <= last; u++)
      reduce_unit(u);
    /* The next walk reuses the row sums, the statistics and the staged rows. */
    __syncthreads();
  }
};

template <typename T, int SW, bool VEC>
__global__ void __launch_bounds__(strip_config<T, SW>::threads, strip_config<T, SW>::min_blocks)
    infer_kernel(const ssim_cuda_geometry geo, const ssim_cuda_forward_args args,
                 const strip_plan plan) {
  extern __shared__ float4 smem4[];
  allow_dependent_launch(); /* the finalize kernel, where it follows */
  bool bad = false;
  for_each_walk(plan, [&](int64_t plane, int64_t strip, int64_t r0, int64_t r1) {
    strip_walk<T, SW, VEC> walk(geo, args, plan, reinterpret_cast<char *>(smem4), plane, strip, r0,
                                r1);
    walk.run();
    bad |= walk.bad;
  });
  if (bad)
    *args.nonfinite = args.call;
  /* A walk ends with a barrier and leaves all shared memory free. */
  static_assert(strip_config<T, SW>::smem >= kFinishSharedBytes, "room for the finish");
  if (args.finish.scores != nullptr)
    finish_launch(geo, args, reinterpret_cast<double *>(smem4));
}

template <typename T, int SW, bool VEC> cudaError_t prepare_infer(int sms, int *resident) {
  using cfg = strip_config<T, SW>;
  return prepare_persistent(infer_kernel<T, SW, VEC>, cfg::threads, cfg::smem, sms, resident);
}

template <typename T, int SW> cudaError_t prepare_infer_dtype(int sms, int *resident) {
  cudaError_t err = prepare_infer<T, SW, true>(sms, resident);
  if (err == cudaSuccess)
    err = prepare_infer<T, SW, false>(sms, nullptr);
  return err;
}

/* Sets up the kernels of one strip width. The float kernels' grid is the one every dtype uses:
 * the integer kernels stage fewer bytes, so at least as many of their blocks fit. */
template <int SW> cudaError_t prepare_infer_width(int sms, int shared_optin, int *resident) {
  *resident = 0;
  if ((size_t)shared_optin < strip_config<float, SW>::smem)
    return cudaSuccess; /* this width does not fit the device: never picked */
  cudaError_t err = prepare_infer_dtype<float, SW>(sms, resident);
  if (err == cudaSuccess)
    err = prepare_infer_dtype<uint16_t, SW>(sms, nullptr);
  if (err == cudaSuccess)
    err = prepare_infer_dtype<uint8_t, SW>(sms, nullptr);
  return err;
}

template <typename T, int SW>
cudaError_t launch_infer(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                         int resident, cudaStream_t stream) {
  using cfg = strip_config<T, SW>;
  /* Its sums are float sums of units, whole in one walk. */
  const strip_plan plan = make_strip_plan(geo, args.planes, SW, SSIM_BLOCK, resident);
  /* 16-byte copies need rows of whole 16-byte chunks and aligned images. */
  const bool vec = (geo.width * (int64_t)sizeof(T)) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(args.img1) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(args.img2) % 16 == 0;
  if (vec)
    infer_kernel<T, SW, true>
        <<<(unsigned)plan.blocks, cfg::threads, cfg::smem, stream>>>(geo, args, plan);
  else
    infer_kernel<T, SW, false>
        <<<(unsigned)plan.blocks, cfg::threads, cfg::smem, stream>>>(geo, args, plan);
  return cudaGetLastError();
}

template <int SW>
cudaError_t launch_infer_dtype(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                               int resident, cudaStream_t stream) {
  switch (geo.dtype) {
  case SSIM_DTYPE_U8:
    return launch_infer<uint8_t, SW>(geo, args, resident, stream);
  case SSIM_DTYPE_U16:
    return launch_infer<uint16_t, SW>(geo, args, resident, stream);
  default:
    return launch_infer<float, SW>(geo, args, resident, stream);
  }
}

/* Vertical-pass lanes per map row of a strip width: its columns rounded up to whole warps. */
constexpr int64_t strip_lanes(int sw) {
  return (sw + 2 * SSIM_HALO + 31) / 32 * 32;
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

cudaError_t ssim_cuda_infer_init(int sms, int shared_optin, ssim_cuda_resident *resident) {
  int *grid = resident->infer;
  cudaError_t err = prepare_infer_width<64>(sms, shared_optin, &grid[0]);
  if (err == cudaSuccess)
    err = prepare_infer_width<128>(sms, shared_optin, &grid[1]);
  if (err == cudaSuccess)
    err = prepare_infer_width<192>(sms, shared_optin, &grid[2]);
  if (err == cudaSuccess)
    err = ssim_cuda_infer_tma_init(sms, shared_optin, &resident->tma);
  return err;
}

cudaError_t ssim_cuda_infer(const ssim_cuda_geometry *geo, const ssim_cuda_resident *resident,
                            const ssim_cuda_forward_args *args, cudaStream_t stream) {
#ifndef SSIM_CUDA_NO_TMA /* a build-time switch for comparing the two kernels */
  bool launched = false;
  const cudaError_t err = ssim_cuda_infer_tma(geo, &resident->tma, args, stream, &launched);
  if (err != cudaSuccess || launched)
    return err;
#endif
  const int *grid = resident->infer;
  /* The strip width that spends the fewest vertical-pass lanes on a map row (the horizontal
   * pass costs the same for any width). */
  const int best = pick_strip_width(grid, [&](int sw) {
#ifdef SSIM_CUDA_FORCE_STRIP_W
    /* A build-time override for tuning: 64, 128 or 192, where it fits the device. */
    return sw == SSIM_CUDA_FORCE_STRIP_W ? (int64_t)0 : (int64_t)1;
#else
    return div_up(geo->map_w, sw) * strip_lanes(sw);
#endif
  });
  switch (best) {
  case 0:
    return launch_infer_dtype<64>(*geo, *args, grid[0], stream);
  case 1:
    return launch_infer_dtype<128>(*geo, *args, grid[1], stream);
  case 2:
    return launch_infer_dtype<192>(*geo, *args, grid[2], stream);
  default:
    return cudaErrorInvalidConfiguration;
  }
}

void ssim_cuda_infer_partials(const ssim_cuda_geometry *geo, ssim_cuda_partials *layout) {
  layout->pieces = 1;
  layout->piece_rows = div_up(geo->map_h, SSIM_BLOCK);
  layout->pitch = 2 * div_up(geo->map_w, kTileW);
}
