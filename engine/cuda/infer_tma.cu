/*
 * infer_tma.cu: the inference kernel of sm_90 and later (scores, block means and, when asked,
 * the map), where the Tensor Memory Accelerator (TMA) copies pixels into shared memory.
 *
 * Like the strip kernel of infer.cu, a block walks down a vertical strip of the map, SW columns
 * wide, over its share of the rows (strip_plan), but the two blurs run the other way round:
 *   1. The TMA copies 11 input rows of both images (SW + 10 columns and a little more) into
 *      shared memory: one instruction of one thread per image, zeros outside the image, no
 *      address arithmetic in the other threads. The copies of the step after the next are
 *      issued as soon as a step's rows are read (two buffers), across walks: a walk's first
 *      rows are copied while the walk before it ends (copy_cursor).
 *   2. Horizontal pass: each work item is item_w adjacent outputs of one row (12, or 4 on narrow
 *      strips). It converts its item_w + 10 input pixel pairs to the four statistics in
 *      registers, blurs them, and writes each output's four blurred statistics to shared memory
 *      as one float4 (two buffers on 192-column strips, one on narrower ones: h_buffers).
 *   3. Vertical pass: thread t owns map column t of the strip and keeps, in registers, the
 *      vertical blur of the four statistics for the 11 output rows whose windows cover the
 *      current row (the sliding window of infer_common.cuh). Each row completes one output,
 *      whose SSIM is evaluated right there and added to the column's sum.
 * One barrier per step of 11 rows (two with one buffer of blurred rows). The scores' kernel and
 * the map's are separate kernels (MAP). The vertical pass has no halo columns (every thread's
 * column is an output column) and nothing but the sums leaves the registers, so fewer instructions
 * are issued per pixel than in infer.cu.
 *
 * Sums: each output's S / 4 (see ssim_quarter) is rounded to a whole number of 2^-24
 * (quarter_units, scores.cuh) and added as an integer: in 32 bits over a step (or a unit of 32
 * rows, for block means), then in 64 bits over the walk, and over a warp's 32 columns before one
 * atomic a warp and walk into the plane's fixed-point sum. Integers add up the same in any order,
 * so a plane's sum does not depend on where the walks were cut, and the blocks' shares of rows
 * (strip_plan) may end at any row: equal shares of rows plus their window fills, rather than of
 * whole 32-row units, shorten the longest share by 2 to 4% on the usual shapes. Block means keep
 * walks of whole units, each unit's 32 x 32 blocks added over the warp at its end.
 *
 * Non-finite input: a blurred mean is NaN or infinite exactly when a pixel of its window is. The
 * means of output rows 11 apart have windows that tile the input rows, so checking one output
 * row a step, and the walk's last, covers every pixel of the walk.
 *
 * Used where the device is sm_90 or later, its code for this kernel is there, and the images'
 * rows are whole 16-byte chunks in 16-byte aligned memory: the TMA reads from 16-byte aligned
 * addresses only (the box of a strip starts at the 16-byte boundary left of its first input
 * column). infer.cu's kernel runs everywhere else.
 */
#include "infer_common.cuh"

#if CUDART_VERSION >= 12050
#include <cuda.h>
#include <cudaTypedefs.h>
#define SSIM_CUDA_HAVE_TMA 1
#endif

#ifdef SSIM_CUDA_HAVE_TMA

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
/* Before sm_90 the kernels are empty (never launched there), which leaves their layouts'
 * constants unused. */
#pragma nv_diag_suppress declared_but_not_referenced
#endif

namespace ssim_cuda {
namespace {

/* Outputs per horizontal work item: its item_w + 10 input pixels are converted once for item_w
 * outputs. 12 on 192-column strips: a step's 11 rows are 176 items, one round of the block's 192
 * threads (with 6, 352 items took two rounds, one warp in six idle in the second; 12 ran 2 to 6%
 * faster on an H200, with the same bits, since an output's sums are the same FMAs in the same
 * order). 4 on narrower strips. Overridable at build time for tuning, for every width
 * (SSIM_CUDA_FORCE_ITEM_W) or one (SSIM_CUDA_ITEM_W_64, _128, _192). */
template <int SW> constexpr int item_width() {
#if defined(SSIM_CUDA_ITEM_W_64)
  if (SW == 64)
    return SSIM_CUDA_ITEM_W_64;
#endif
#if defined(SSIM_CUDA_ITEM_W_128)
  if (SW == 128)
    return SSIM_CUDA_ITEM_W_128;
#endif
#if defined(SSIM_CUDA_ITEM_W_192)
  if (SW == 192)
    return SSIM_CUDA_ITEM_W_192;
#endif
#ifdef SSIM_CUDA_FORCE_ITEM_W
  return SSIM_CUDA_FORCE_ITEM_W;
#else
  return SW % 12 == 0 ? 12 : 4;
#endif
}

/* The blurred rows hold one float4 per output, and an item stores its outputs one float4 apart,
 * so the 8 threads of a quarter warp store item_w float4s apart, which for every width hits some
 * banks twice or more. Skewing groups of whole items by a float4 spreads those stores over all
 * banks, and the vertical pass's reads of 8 consecutive columns (a group never splits them) stay
 * on distinct banks (blurred_rows_conflict_free, checked at build time: the tuning widths 6 and 8
 * pass too, 16 on 192-column strips does not): for 6-output items the second of every two groups
 * of 24 columns, for 12-output items every group of 24, others one float4 after every skew_group
 * columns. */
constexpr int skew_group(int item_w) {
  return item_w == 6 || item_w == 12 ? 24 : item_w < 8 ? 8 : item_w;
}

/* Where the TMA copies a walk's rows from: the box of its first step, and its steps. */
struct walk_box {
  int x, y, z; /* box of the first step (image coordinates, plane) */
  int lead;    /* the strip's first input column, past x */
  int rows;    /* output rows */
  int steps;   /* of kBatch input rows: rows + kWarm input rows */
};

/* Thread 0's side of the pipeline, in shared memory: the copies of the block's steps, in order,
 * across its walks, two steps ahead of the passes (so a walk's first steps are copied during
 * the last steps of the walk before it). */
struct copy_cursor {
  walk_cursor walks; /* the walks after the current one */
  walk_box box;      /* the current one; box.y is its next step's */
  int left;          /* its steps not yet copied; 0 after the last walk */
  unsigned step;     /* the block's steps copied so far */
};

/* The layout of one kernel: T the pixels' type, SW the strip width, E0 where an item's first
 * input pixel lies past a 4-pixel boundary (see `lead` below). */
template <typename T, int SW, int E0> struct tma_config {
  static constexpr int threads = SW; /* one map column per thread in the vertical pass */
  static constexpr int item_w = item_width<SW>();
  static constexpr int vec = item_w % 4 == 0 ? 4 : 2; /* pixels per load and store of an item */
  static constexpr int items_per_row = SW / item_w;
  static constexpr int cols = item_w + 2 * SSIM_HALO; /* input columns of an item */
  /* A box starts `lead` pixels left of the strip's first input column, where the TMA may start
   * (a 16-byte boundary): lead < chunk. An item's loads start at column (lead & ~3) + skip and
   * its first input pixel is pixel `offset` of them, with E0 = lead & 3, which is 0 or 3 (valid
   * and same padding). */
  static constexpr int chunk = 16 / (int)sizeof(T);
  static constexpr int skip = E0 / vec * vec;
  static constexpr int offset = E0 % vec;
  static constexpr int vecs = (offset + cols + vec - 1) / vec;
  /* Pixels per row of a box: up to the end of the last item's loads at the largest lead, in
   * whole 16-byte chunks. */
  static constexpr int box_w =
      (chunk - 4 + skip + SW - item_w + vec * vecs + chunk - 1) / chunk * chunk;
  static constexpr unsigned box_bytes = box_w * kBatch * sizeof(T);
  static constexpr int stage_bytes = (box_bytes + 127) / 128 * 128; /* 128-byte aligned boxes */
  /* Blurred rows: the four statistics of an output in one float4, skewed (skew_group). A group
   * holds whole items, so an item's outputs stay consecutive: h_index(k, first) + o. */
  static constexpr int group = skew_group(item_w);
  static_assert(group % item_w == 0, "whole items in a skew group");
  __host__ __device__ static constexpr int skew(int col) {
    return item_w == 6 ? (col / group + 1) / 2 : col / group;
  }
  static constexpr int h_pitch = SW + skew(SW - 1);     /* float4s a row: up to the last column */
  static constexpr int h_floats = 4 * kBatch * h_pitch; /* one buffer */
  __host__ __device__ static constexpr int h_index(int k, int col) {
    return k * h_pitch + col + skew(col);
  }
  /* Buffers of blurred rows, and warps an SM. With two, the next step's horizontal pass may start
   * while the vertical pass reads this one's; with one, a second barrier a step separates them,
   * and the shared memory saved lets more blocks share an SM. On an H200, one buffer and 18 warps
   * ran 64x3x256x256 (128-column strips) 2.8% faster than two and 12 warps, but the 192-column
   * shapes 3.5 to 13% slower. */
  static constexpr int h_buffers = SW == 192 ? 2 : 1;
  static constexpr int min_blocks = (h_buffers == 2 ? 12 : 18) * 32 / SW;
  /* Two buffers of two images' boxes, the blurred rows, two barriers, the copies' cursor,
   * alignment slack. */
  static constexpr size_t smem = 4 * (size_t)stage_bytes +
                                 h_buffers * (size_t)h_floats * sizeof(float) +
                                 2 * sizeof(uint64_t) + sizeof(copy_cursor) + 128;
  static_assert(SW % 32 == 0 && SW % item_w == 0 && item_w % vec == 0, "whole warps and items");
  static_assert(box_w <= 256, "a TMA box row holds at most 256 pixels");
};

/* Whether the 8 blurred-row indices idx[0..n) fall on distinct banks (16-byte units, mod 8). */
constexpr bool distinct_banks(const int (&idx)[8], int n) {
  unsigned banks = 0;
  for (int i = 0; i < n; i++) {
    const unsigned bank = 1u << (idx[i] % 8);
    if (banks & bank)
      return false;
    banks |= bank;
  }
  return true;
}

/* Whether the 8 threads of each quarter warp, whose 16-byte accesses are served together, touch
 * 8 distinct banks of the blurred rows: output o of 8 consecutive items in the horizontal pass's
 * stores (the items of a quarter warp in any round), and 8 consecutive columns of a row in the
 * vertical pass's reads. */
template <typename cfg> constexpr bool blurred_rows_conflict_free() {
  constexpr int items = kBatch * cfg::items_per_row;
  for (int first = 0; first < items; first += 8)
    for (int o = 0; o < cfg::item_w; o++) {
      int idx[8] = {};
      int n = 0;
      for (int item = first; item < first + 8 && item < items; item++, n++) {
        const int k = item / cfg::items_per_row;
        idx[n] = cfg::h_index(k, (item - k * cfg::items_per_row) * cfg::item_w + o);
      }
      if (!distinct_banks(idx, n))
        return false;
    }
  for (int k = 0; k < kBatch; k++)
    for (int first = 0; first < cfg::threads; first += 8) {
      int idx[8] = {};
      for (int i = 0; i < 8; i++)
        idx[i] = cfg::h_index(k, first + i);
      if (!distinct_banks(idx, 8))
        return false;
    }
  return true;
}

/*
 * SSIM / 4 of one pixel from its blurred centred statistics (m1, m2, sq = G*(x^2 + y^2) + C2,
 * xy = G*(xy) + C2 / 2), with fused-ssim's clamps: S = Cn D / (A B) with Cn / 2 and D / 2 in
 * one FMA each.
 */
__device__ __forceinline__ float ssim_quarter(const float (&a)[kStats], float center) {
  const float m1 = a[0], m2 = a[1];
  const float mu1 = m1 + center, mu2 = m2 + center;
  const float A = fmaf(mu1, mu1, fmaf(mu2, mu2, SSIM__C1));
  const float half_cn = fmaf(mu1, mu2, 0.5f * SSIM__C1);
  /* s11 + s22 + C2 with the summed variance clamped at 0. */
  const float B = fmaxf(fmaf(-m2, m2, fmaf(-m1, m1, a[2])), SSIM__C2);
  const float half_d = fmaf(-m1, m2, a[3]);
  /* A >= C1 and B >= C2: A * B is a normal float, so the one-instruction reciprocal is safe. */
  return fmaxf(-0.25f, fminf(0.25f, half_cn * half_d * fast_rcp(A * B)));
}

/* `check` turns NaN when a blurred mean is not: exactly when a pixel of its window is NaN or
 * infinite (a weighted mean of finite values stays finite). */
__device__ __forceinline__ void check_means(const float (&a)[kStats], float &check) {
  check = fmaf(a[0], 0.0f, fmaf(a[1], 0.0f, check));
}

/* The CUDA vector type of N = 2 or 4 pixels of type T. */
template <typename T, int N> struct pixel_vector;
template <> struct pixel_vector<float, 4> { using type = float4; };
template <> struct pixel_vector<float, 2> { using type = float2; };
template <> struct pixel_vector<uint16_t, 4> { using type = ushort4; };
template <> struct pixel_vector<uint16_t, 2> { using type = ushort2; };
template <> struct pixel_vector<uint8_t, 4> { using type = uchar4; };
template <> struct pixel_vector<uint8_t, 2> { using type = uchar2; };

/* N pixels from shared memory as floats, in one load of 2 to 16 bytes. */
template <typename T, int N>
__device__ __forceinline__ void load_pixels(const T *p, float (&v)[N]) {
  const auto u = *reinterpret_cast<const typename pixel_vector<T, N>::type *>(p);
  v[0] = u.x;
  v[1] = u.y;
  if constexpr (N == 4) {
    v[2] = u.z;
    v[3] = u.w;
  }
}

__device__ __forceinline__ unsigned shared_address(const void *p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

#if __CUDA_ARCH__ >= 900
__device__ __forceinline__ void barrier_init(uint64_t *bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(shared_address(bar)) : "memory");
}

/* Makes initialised barriers visible to the TMA unit. */
__device__ __forceinline__ void barrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

/* The one arrival a phase of `bar` expects, announcing `bytes` of copies that complete it. */
__device__ __forceinline__ void barrier_expect(uint64_t *bar, unsigned bytes) {
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)),
      "r"(bytes)
      : "memory");
}

/* Waits until the phase of `bar` with parity `parity` has completed. */
__device__ __forceinline__ void barrier_wait(uint64_t *bar, unsigned parity) {
  asm volatile("{\n"
               ".reg .pred done;\n"
               "wait:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
               "@!done bra wait;\n"
               "}\n" ::"r"(shared_address(bar)),
               "r"(parity)
               : "memory");
}

/* Copies the box at (x, y, z) of `map` to `dst`; its bytes complete a phase of `bar`. The pixels
 * are read once (a strip's halo columns twice, by the neighbouring strip at about the same
 * time), so they are marked first to leave L2: what L2 holds for longer is then the kernel's own
 * code, which the finish of the launch runs cold. */
__device__ __forceinline__ void tma_load(void *dst, const CUtensorMap *map, int x, int y, int z,
                                         uint64_t *bar) {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
               ".L2::cache_hint [%0], [%1, {%2, %3, %4}], [%5], %6;\n" ::"r"(shared_address(dst)),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(z),
               "r"(shared_address(bar)), "l"(policy)
               : "memory");
}
#endif

/*
 * The horizontal pass of one step: the first `rows` (at most kBatch) rows x SW outputs of the
 * four statistics, from the staged rows of both images (box_w pixels a row, starting at an item's
 * first load) into `h` (kBatch rows of SW float4s at cfg::h_index, the four statistics of an
 * output in one). A walk's last step may need fewer than kBatch rows.
 */
template <typename T, int SW, int E0>
__device__ __forceinline__ void horizontal_step(const T *__restrict__ sx, const T *__restrict__ sy,
                                                float *__restrict__ h, float center, int rows) {
  using cfg = tma_config<T, SW, E0>;
  constexpr int N = cfg::vec;
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
  constexpr float scale = unit_scale<T>();
  const int items = rows * cfg::items_per_row;
  for (int item = threadIdx.x; item < items; item += cfg::threads) {
    const int k = item / cfg::items_per_row;
    const int first = (item - k * cfg::items_per_row) * cfg::item_w;
    const T *px = sx + k * cfg::box_w + first, *py = sy + k * cfg::box_w + first;
    float acc[kStats][cfg::item_w];
#pragma unroll
    for (int v = 0; v < cfg::vecs; v++) {
      float xr[N], yr[N];
      load_pixels<T, N>(px + N * v, xr);
      load_pixels<T, N>(py + N * v, yr);
#pragma unroll
      for (int e = 0; e < N; e++) {
        const int c = N * v + e - cfg::offset; /* input column of the item */
        if (c < 0 || c >= cfg::cols)
          continue;
        /* Integer pixels are scaled to [0, 1] and centred in one FMA (see forward.cu). */
        const float x = fmaf(xr[e], scale, -center), y = fmaf(yr[e], scale, -center);
        const float st[kStats] = {x, y, fmaf(x, x, y * y), x * y};
#pragma unroll
        for (int o = 0; o < cfg::item_w; o++) {
          const int tap = c - o;
          if (tap < 0 || tap >= SSIM_WINDOW)
            continue;
#pragma unroll
          for (int s = 0; s < kStats; s++)
            acc[s][o] = tap == 0 ? w[0] * st[s] : fmaf(w[tap], st[s], acc[s][o]);
        }
      }
    }
    /* The four statistics of an output together: the vertical pass reads them in one load. */
    float4 *out = reinterpret_cast<float4 *>(h) + cfg::h_index(k, first);
#pragma unroll
    for (int o = 0; o < cfg::item_w; o++)
      out[o] = make_float4(acc[0][o], acc[1][o], acc[2][o], acc[3][o]);
  }
}

template <int SW, int chunk>
__device__ __forceinline__ walk_box box_of(const ssim_cuda_geometry &geo,
                                           const strip_walk_span &w) {
  walk_box b;
  /* The strip's first input column, and the box's: the TMA starts at 16-byte boundaries. */
  const int x0 = (int)(w.strip * SW + geo.offset - SSIM_HALO);
  b.lead = x0 & (chunk - 1);
  b.x = x0 - b.lead;
  b.y = (int)(w.r0 + geo.offset - SSIM_HALO);
  b.z = (int)w.plane;
  b.rows = (int)(w.r1 - w.r0);
  b.steps = (b.rows + kWarm + kBatch - 1) / kBatch;
  return b;
}

/* Per-block state of the kernel: shared memory, the TMA's barriers, the non-finite check. */
template <typename T, int SW, int E0> struct tma_block {
  using cfg = tma_config<T, SW, E0>;
  const CUtensorMap *map1, *map2;
  const ssim_cuda_geometry &geo;
  const ssim_cuda_forward_args &args;
  const strip_plan &plan;
  unsigned char *stage; /* 2 buffers x 2 images, stage_bytes each */
  float *hbuf;          /* h_buffers x h_floats */
  uint64_t *bars;       /* one barrier per stage buffer */
  copy_cursor *copies;  /* thread 0's */
  unsigned step;        /* steps done by the block: buffer step & 1, its use step >> 1 */
  float check;

  __device__ __forceinline__ T *staged(unsigned s, int image) const {
    return reinterpret_cast<T *>(stage + (2 * (s & 1) + image) * cfg::stage_bytes);
  }

#if __CUDA_ARCH__ >= 900
  /* Thread 0: copies input rows y .. y + 10 (image rows) of strip column x, plane z, for step s. */
  __device__ __forceinline__ void issue(unsigned s, int x, int y, int z) const {
    uint64_t *bar = bars + (s & 1);
    barrier_expect(bar, 2 * cfg::box_bytes);
    tma_load(staged(s, 0), map1, x, y, z, bar);
    tma_load(staged(s, 1), map2, x, y, z, bar);
  }

  /* Thread 0: the next walk's box into the cursor (none: left = 0). */
  __device__ __forceinline__ void next_box(copy_cursor &k) const {
    strip_walk_span w;
    k.left = 0;
    if (k.walks.next(plan, &w)) {
      k.box = box_of<SW, cfg::chunk>(geo, w);
      k.left = k.box.steps;
    }
  }

  /* Thread 0: copies the block's next step, if any. */
  __device__ __forceinline__ void copy_next() const {
    copy_cursor &k = *copies;
    if (k.left == 0)
      return;
    issue(k.step++, k.box.x, k.box.y, k.box.z);
    k.box.y += kBatch;
    if (--k.left == 0)
      next_box(k);
  }
#endif

  /* What the vertical pass of a walk carries from row to row. */
  struct column_state {
    float acc[kBatch][kStats]; /* the sliding window */
    unsigned quarters;         /* S / 4 of the column's outputs since the last flush, in 2^-24
                                  (biased during a step without events: vertical_rows) */
    long long walk_sum;        /* the walk's quarters flushed so far */
    float unit_scale;          /* quarter_units' scale: 2^24 for a column of the map, else 0 */
    float *map_col;            /* the column's map pixel of walk row 0, or NULL */
    int event;                 /* the next output row that ends a unit (block means) or the walk */
    int rows;                  /* output rows of the walk */
    int plane, strip, unit;    /* planes < 2^31 (ssim_cuda_infer_tma) */
  };

  /* Moves the column's quarters into the walk's sum; with block means, a unit has ended, and its
   * sum over the warp's 32 columns (one 32 x 32 block) is written out: exact integers per
   * column, so a block's mean does not depend on how the work was cut. */
  __device__ __forceinline__ void flush(column_state &c) const {
    if (args.partials != nullptr) {
      float s = (float)(int)c.quarters;
#pragma unroll
      for (int off = 16; off > 0; off >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, off);
      const int64_t bx = (int64_t)c.strip * (SW / SSIM_BLOCK) + threadIdx.x / 32;
      if (threadIdx.x % 32 == 0 && bx < plan.partial_pitch)
        args.partials[((int64_t)c.plane * plan.block_rows + c.unit) * plan.partial_pitch + bx] =
            ldexpf(s, 2 - kQuarterShift);
      c.unit++;
    }
    c.walk_sum += (int)c.quarters;
    c.quarters = 0;
  }

  /*
   * Row K of a step of the vertical pass; output row jbase + K completes (with FIRST, the walk's
   * first step, rows 0 .. 9 only fill the window). With EVENTS (a unit or the walk ends in this
   * step), when that row ends a unit its sums are flushed; returns true when it is the walk's
   * last row.
   */
  template <int K, bool FIRST, bool MAP, bool EVENTS>
  __device__ __forceinline__ bool vertical_rows(column_state &c, const float *__restrict__ h,
                                                int jbase) {
    if constexpr (K < kBatch) {
      /* The window's accumulators start from these: G*(x^2 + y^2) + C2 and G*(xy) + C2 / 2 come
       * out of the blur with the constants of ssim_quarter already added. */
      constexpr float bias[kStats] = {0.0f, 0.0f, SSIM__C2, 0.5f * SSIM__C2};
      const float4 v = reinterpret_cast<const float4 *>(h)[cfg::h_index(K, threadIdx.x)];
      const float st[kStats] = {v.x, v.y, v.z, v.w};
      if constexpr (FIRST && K < kWarm) {
        slide<K, true>(c.acc, st, bias);
      } else {
        slide<K, false>(c.acc, st, bias);
        const float(&out)[kStats] = c.acc[(K + 1) % kBatch];
        const float s4 = ssim_quarter(out, geo.center);
        /* A step without events adds its 11 outputs' float bits, and walk() takes their 11
         * biases off after it: exact modulo 2^32, and 11 outputs' quarters fit in 32 bits. */
        c.quarters += EVENTS ? quarter_units(s4, c.unit_scale) : quarter_bits(s4, c.unit_scale);
        if (MAP && c.map_col != nullptr)
          c.map_col[(int64_t)(jbase + K) * geo.map_w] = 4.0f * s4;
        /* Output rows 11 apart have windows that tile the input rows; with the walk's last row
         * they cover every input row of the walk. */
        if constexpr (K == kBatch - 1)
          check_means(out, check);
        if (EVENTS && jbase + K == c.event) {
          flush(c);
          if (c.event == c.rows - 1) {
            check_means(out, check);
            return true;
          }
          c.event = min(c.event + SSIM_BLOCK, c.rows - 1);
        }
      }
      return vertical_rows<K + 1, FIRST, MAP, EVENTS>(c, h, jbase);
    } else {
      return false;
    }
  }

  template <bool MAP> __device__ __forceinline__ void walk(const strip_walk_span &w) {
#if __CUDA_ARCH__ >= 900
    const walk_box box = box_of<SW, cfg::chunk>(geo, w);
    const int rows = box.rows;
    column_state c;
    const int64_t col = w.strip * SW + threadIdx.x;
    c.quarters = 0;
    c.walk_sum = 0;
    c.unit_scale = col < geo.map_w ? ldexpf(1.0f, kQuarterShift) : 0.0f;
    c.map_col = MAP && col < geo.map_w ? args.map + (w.plane * geo.map_h + w.r0) * geo.map_w + col
                                       : nullptr;
    /* Block means: walks of whole units (the plan's granule), a flush at each unit's end. */
    c.event = args.partials != nullptr ? min(SSIM_BLOCK, rows) - 1 : rows - 1;
    c.rows = rows;
    c.plane = (int)w.plane;
    c.strip = (int)w.strip;
    c.unit = (int)(w.r0 / SSIM_BLOCK);
    for (int s = 0; s < box.steps; s++, step++) {
      const unsigned buf = step & 1;
      barrier_wait(bars + buf, (step >> 1) & 1);
      /* Whole 4-pixel groups before the strip's first input column, then the item's. */
      const int skip = (box.lead & ~3) + cfg::skip;
      float *h = hbuf + (cfg::h_buffers == 2 ? buf : 0) * cfg::h_floats;
      /* The walk's input rows are its rows + kWarm; the last step needs the rest of them. */
      const int step_rows = min(kBatch, rows + kWarm - s * kBatch);
      horizontal_step<T, SW, E0>(staged(step, 0) + skip, staged(step, 1) + skip, h, geo.center,
                                 step_rows);
      /* The blurred rows are complete, and this step's staged rows read. */
      __syncthreads();
      if (threadIdx.x == 0)
        copy_next();
      const int jbase = s * kBatch - kWarm; /* the output row that row 0 of the step completes */
      if (s == 0)
        vertical_rows<0, true, MAP, true>(c, h, jbase);
      else if (c.event - jbase >= kBatch) { /* no unit or walk ends in this step */
        vertical_rows<0, false, MAP, false>(c, h, jbase);
        c.quarters -= kBatch * kQuarterBias;
      } else
        vertical_rows<0, false, MAP, true>(c, h, jbase);
      /* Without block means, quarters are flushed every step: 11 rows of them fit in 32 bits
       * (flush's work without block means, written out: calling flush here changes the
       * kernel's code, which was measured as it is). */
      if (args.partials == nullptr) {
        c.walk_sum += (int)c.quarters;
        c.quarters = 0;
      }
      if (cfg::h_buffers == 1)
        __syncthreads(); /* the blurred rows are read before the next step writes them */
    }
    /* One atomic a warp and walk: integers add up the same whichever way they are grouped. */
    long long sum = c.walk_sum;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      sum += __shfl_xor_sync(0xffffffffu, sum, off);
    /* Quarters (2^-24 of S / 4) in the planes' fixed point (2^-sum_shift of S, sum_shift >= 22:
     * ssim_cuda_infer_tma), shifted as unsigned: a negative sum's bits shift the same. */
    if (threadIdx.x % 32 == 0)
      add_to_plane_sum(args, c.plane,
                       (long long)((unsigned long long)sum << (geo.sum_shift + 2 - kQuarterShift)));
#endif
  }
};

/* MAP: the kernel that also writes the map; the one without it is a separate kernel, so that the
 * scores' kernel carries no code or registers of the map's. */
template <typename T, int SW, int E0, bool MAP>
__global__ void __launch_bounds__(tma_config<T, SW, E0>::threads, tma_config<T, SW, E0>::min_blocks)
    infer_tma_kernel(const __grid_constant__ CUtensorMap map1,
                     const __grid_constant__ CUtensorMap map2, const ssim_cuda_geometry geo,
                     const ssim_cuda_forward_args args, const strip_plan plan) {
#if __CUDA_ARCH__ >= 900
  using cfg = tma_config<T, SW, E0>;
  extern __shared__ float4 smem4[];
  allow_dependent_launch(); /* the finalize kernel, where it follows */
  /* The TMA writes boxes to 128-byte aligned addresses. */
  const unsigned pad = (128 - shared_address(smem4) % 128) % 128;
  unsigned char *base = reinterpret_cast<unsigned char *>(smem4) + pad;
  unsigned char *after_rows =
      base + 4 * cfg::stage_bytes + cfg::h_buffers * cfg::h_floats * sizeof(float);
  tma_block<T, SW, E0> blk{&map1,
                           &map2,
                           geo,
                           args,
                           plan,
                           base,
                           reinterpret_cast<float *>(base + 4 * cfg::stage_bytes),
                           reinterpret_cast<uint64_t *>(after_rows),
                           reinterpret_cast<copy_cursor *>(after_rows + 2 * sizeof(uint64_t)),
                           0u,
                           0.0f};
  walk_cursor walks = walk_cursor::of_block(plan, blockIdx.x);
  if (threadIdx.x == 0) {
    barrier_init(blk.bars);
    barrier_init(blk.bars + 1);
    barrier_init_fence();
    blk.copies->walks = walks;
    blk.copies->step = 0;
    blk.next_box(*blk.copies);
    blk.copy_next();
    blk.copy_next();
  }
  __syncthreads();
  strip_walk_span w;
  while (walks.next(plan, &w))
    blk.template walk<MAP>(w);
  if (!(blk.check == 0.0f))
    *args.nonfinite = args.call;
  /* The staged and blurred rows are free after the walks (finish_launch starts with a barrier). */
  static_assert(4 * cfg::stage_bytes + cfg::h_buffers * cfg::h_floats * sizeof(float) >=
                    kFinishSharedBytes,
                "room for the finish");
  if (args.finish.scores != nullptr)
    finish_launch(geo, args, reinterpret_cast<double *>(base));
#endif
}

/* The driver's tensor-map encoder, reached through the runtime (no link to libcuda). */
using encode_fn = PFN_cuTensorMapEncodeTiled_v12000;

template <typename T> constexpr CUtensorMapDataType tma_dtype() {
  return sizeof(T) == 1   ? CU_TENSOR_MAP_DATA_TYPE_UINT8
         : sizeof(T) == 2 ? CU_TENSOR_MAP_DATA_TYPE_UINT16
                          : CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
}

/* A tensor map of `planes` planes of the image at `img`: boxes of box_w x 11, zeros outside. */
bool encode_image(encode_fn encode, CUtensorMap *map, CUtensorMapDataType dtype, int esize,
                  int box_w, const void *img, const ssim_cuda_geometry &geo, int64_t planes) {
  const cuuint64_t dims[3] = {(cuuint64_t)geo.width, (cuuint64_t)geo.height, (cuuint64_t)planes};
  const cuuint64_t strides[2] = {(cuuint64_t)(geo.width * esize),
                                 (cuuint64_t)(geo.width * geo.height * esize)};
  const cuuint32_t box[3] = {(cuuint32_t)box_w, (cuuint32_t)kBatch, 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  return encode(map, dtype, 3, const_cast<void *>(img), dims, strides, box, element_strides,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T, int SW, int E0>
cudaError_t launch_tma(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                       int resident, encode_fn encode, cudaStream_t stream, bool *launched) {
  using cfg = tma_config<T, SW, E0>;
  static_assert(blurred_rows_conflict_free<cfg>(), "an item width or skew with bank conflicts");
  CUtensorMap map1, map2;
  if (!encode_image(encode, &map1, tma_dtype<T>(), sizeof(T), cfg::box_w, args.img1, geo,
                    args.planes) ||
      !encode_image(encode, &map2, tma_dtype<T>(), sizeof(T), cfg::box_w, args.img2, geo,
                    args.planes))
    return cudaSuccess; /* not launched: the strip kernel takes the call */
  /* Shares cut anywhere, but on whole units for block means (see tma_block::flush). */
  const strip_plan plan =
      make_strip_plan(geo, args.planes, SW, args.partials != nullptr ? SSIM_BLOCK : 1, resident);
  if (args.map != nullptr)
    infer_tma_kernel<T, SW, E0, true>
        <<<(unsigned)plan.blocks, cfg::threads, cfg::smem, stream>>>(map1, map2, geo, args, plan);
  else
    infer_tma_kernel<T, SW, E0, false>
        <<<(unsigned)plan.blocks, cfg::threads, cfg::smem, stream>>>(map1, map2, geo, args, plan);
  *launched = true;
  return cudaGetLastError();
}

/* E0 of a call: where its strips' first input columns lie past a 4-pixel boundary (the strips
 * start at multiples of 16 columns). -1 where the kernel has no variant for it. */
int first_column_phase(const ssim_cuda_geometry &geo) {
  const int phase = ((geo.offset - SSIM_HALO) % 4 + 4) % 4;
  return phase == 0 || phase == 3 ? phase : -1;
}

template <typename T, int SW>
cudaError_t launch_tma_phase(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                             int resident, encode_fn encode, cudaStream_t stream, bool *launched) {
  switch (first_column_phase(geo)) {
  case 0:
    return launch_tma<T, SW, 0>(geo, args, resident, encode, stream, launched);
  case 3:
    return launch_tma<T, SW, 3>(geo, args, resident, encode, stream, launched);
  default:
    return cudaSuccess;
  }
}

template <int SW>
cudaError_t launch_tma_dtype(const ssim_cuda_geometry &geo, const ssim_cuda_forward_args &args,
                             int resident, encode_fn encode, cudaStream_t stream, bool *launched) {
  switch (geo.dtype) {
  case SSIM_DTYPE_U8:
    return launch_tma_phase<uint8_t, SW>(geo, args, resident, encode, stream, launched);
  case SSIM_DTYPE_U16:
    return launch_tma_phase<uint16_t, SW>(geo, args, resident, encode, stream, launched);
  default:
    return launch_tma_phase<float, SW>(geo, args, resident, encode, stream, launched);
  }
}

/* Sets up one kernel and lowers *resident to its grid; 0 when it does not fit, or when the
 * device's code for it was not compiled for sm_90 or later (a build for older architectures
 * only, run through the driver's PTX compiler on a newer GPU, has the empty kernel). */
template <typename T, int SW, int E0, bool MAP>
cudaError_t prepare_tma(int sms, int shared_optin, int *resident) {
  using cfg = tma_config<T, SW, E0>;
  bool sm90 = false;
  int grid = 0;
  cudaError_t err = has_sm90_code(infer_tma_kernel<T, SW, E0, MAP>, &sm90);
  if (sm90 && (size_t)shared_optin >= cfg::smem)
    err = prepare_persistent(infer_tma_kernel<T, SW, E0, MAP>, cfg::threads, cfg::smem, sms, &grid);
  *resident = min(*resident, grid);
  return err;
}

template <typename T, int SW> cudaError_t prepare_tma_dtype(int sms, int shared_optin, int *grid) {
  cudaError_t err = prepare_tma<T, SW, 0, false>(sms, shared_optin, grid);
  if (err == cudaSuccess)
    err = prepare_tma<T, SW, 3, false>(sms, shared_optin, grid);
  if (err == cudaSuccess)
    err = prepare_tma<T, SW, 0, true>(sms, shared_optin, grid);
  if (err == cudaSuccess)
    err = prepare_tma<T, SW, 3, true>(sms, shared_optin, grid);
  return err;
}

/* The grid of one strip width: the smallest of its kernels' (the dtypes, phases and map variants
 * share it); 0 when one of them is missing or does not fit. */
template <int SW> cudaError_t prepare_tma_width(int sms, int shared_optin, int *resident) {
  *resident = INT32_MAX;
  cudaError_t err = prepare_tma_dtype<float, SW>(sms, shared_optin, resident);
  if (err == cudaSuccess)
    err = prepare_tma_dtype<uint16_t, SW>(sms, shared_optin, resident);
  if (err == cudaSuccess)
    err = prepare_tma_dtype<uint8_t, SW>(sms, shared_optin, resident);
  if (err != cudaSuccess)
    *resident = 0;
  return err;
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

cudaError_t ssim_cuda_infer_tma_init(int sms, int shared_optin, ssim_cuda_tma *tma) {
  for (int i = 0; i < SSIM_CUDA_INFER_WIDTHS; i++)
    tma->resident[i] = 0;
  tma->encode = nullptr;
  int device = 0, major = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (err != cudaSuccess || major < 9)
    return err;
  void *encode = nullptr;
  cudaDriverEntryPointQueryResult found;
  if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &encode, 12000, cudaEnableDefault,
                                       &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess || encode == nullptr) {
    (void)cudaGetLastError();
    return cudaSuccess; /* a driver without the TMA: the strip kernel runs */
  }
  err = prepare_tma_width<64>(sms, shared_optin, &tma->resident[0]);
  if (err == cudaSuccess)
    err = prepare_tma_width<128>(sms, shared_optin, &tma->resident[1]);
  if (err == cudaSuccess)
    err = prepare_tma_width<192>(sms, shared_optin, &tma->resident[2]);
  if (err == cudaSuccess)
    tma->encode = encode;
  return err;
}

cudaError_t ssim_cuda_infer_tma(const ssim_cuda_geometry *geo, const ssim_cuda_tma *tma,
                                const ssim_cuda_forward_args *args, cudaStream_t stream,
                                bool *launched) {
  *launched = false;
  const int64_t esize = (int64_t)ssim_cuda_dtype_size(geo->dtype);
  /* The TMA reads rows of whole 16-byte chunks from 16-byte aligned images, with coordinates
   * in 32 bits. */
  if (tma->encode == nullptr || (geo->width * esize) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(args->img1) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(args->img2) % 16 != 0 || geo->height > INT32_MAX / 2 ||
      geo->width > INT32_MAX / 2 || args->planes > INT32_MAX)
    return cudaSuccess;
  /* Its sums count 2^-22 of S: they fit the planes' fixed point up to 2^40 pixels a pair. */
  if (geo->sum_shift < kQuarterShift - 2)
    return cudaSuccess;
  if (first_column_phase(*geo) < 0)
    return cudaSuccess;
  /* The width that leaves the fewest columns of its last strip outside the map. */
  const int best =
      pick_strip_width(tma->resident, [&](int sw) { return div_up(geo->map_w, sw) * sw; });
  const encode_fn encode = reinterpret_cast<encode_fn>(tma->encode);
  switch (best) {
  case 0:
    return launch_tma_dtype<64>(*geo, *args, tma->resident[0], encode, stream, launched);
  case 1:
    return launch_tma_dtype<128>(*geo, *args, tma->resident[1], encode, stream, launched);
  case 2:
    return launch_tma_dtype<192>(*geo, *args, tma->resident[2], encode, stream, launched);
  default:
    return cudaSuccess;
  }
}

#else /* no TMA in this toolkit: the strip kernel of infer.cu runs everywhere */

cudaError_t ssim_cuda_infer_tma_init(int, int, ssim_cuda_tma *tma) {
  for (int i = 0; i < SSIM_CUDA_INFER_WIDTHS; i++)
    tma->resident[i] = 0;
  tma->encode = nullptr;
  return cudaSuccess;
}

cudaError_t ssim_cuda_infer_tma(const ssim_cuda_geometry *, const ssim_cuda_tma *,
                                const ssim_cuda_forward_args *, cudaStream_t, bool *launched) {
  *launched = false;
  return cudaSuccess;
}

#endif
