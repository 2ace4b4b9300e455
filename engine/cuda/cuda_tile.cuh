/*
 * cuda_tile.cuh: device helpers that the forward and backward kernels share: input conversion,
 * the tile layout in shared memory, and the separable 11-tap blur of that tile.
 * Internal to engine/cuda.
 *
 * A block produces one output tile of SSIM_CUDA_TILE_W x TH pixels. It stages its inputs with a
 * halo of SSIM_HALO pixels on every side (rows padded to kPitch floats, a multiple of a float4),
 * blurs every staged row horizontally into a second shared buffer, then each thread blurs one
 * column of that buffer vertically for several consecutive output rows, keeping those outputs
 * in registers.
 */
#ifndef SSIM_CUDA_TILE_CUH
#define SSIM_CUDA_TILE_CUH

#include <stdint.h>

#include "cuda_kernels.cuh"
#include "ssim.h"
#include "ssim_constants.h"

namespace ssim_cuda {

constexpr int kTileW = SSIM_CUDA_TILE_W;
constexpr int kLeft = SSIM_HALO; /* staged columns left of the tile */
/* Floats per staged row: kTileW + 2 * SSIM_HALO = 74 used, rounded up to whole float4s. */
constexpr int kPitch = (kTileW + 2 * SSIM_HALO + 3) / 4 * 4;
constexpr int kGroups = kTileW / 4;        /* float4 column groups of a horizontally blurred row */
constexpr int kMaxPlanesPerLaunch = 65535; /* gridDim.y */

__device__ __forceinline__ float to_unit(uint8_t v) {
  return (float)v * SSIM__U8_SCALE;
}
__device__ __forceinline__ float to_unit(uint16_t v) {
  return (float)v * SSIM__U16_SCALE;
}
__device__ __forceinline__ float to_unit(float v) {
  return v;
}

/* The scale of a dtype to [0, 1]: to_unit(v) == (float)v * unit_scale<T>() for integer types. */
template <typename T> __device__ __forceinline__ constexpr float unit_scale() {
  return sizeof(T) == 1 ? SSIM__U8_SCALE : sizeof(T) == 2 ? SSIM__U16_SCALE : 1.0f;
}

/* Reciprocal to about 1 ulp in one instruction (MUFU.RCP), for arguments known to be normal. */
__device__ __forceinline__ float fast_rcp(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

__host__ __device__ constexpr int64_t div_up(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

/* Tile `t` of a launch (planes x tiles_y x tiles_x, plane-major) as plane and map origin. */
struct tile_pos {
  int64_t plane, my0, mx0;
};

__device__ __forceinline__ tile_pos tile_at(int64_t t, int64_t tiles, int64_t tiles_x, int th) {
  tile_pos p;
  int64_t in_plane;
  if ((uint64_t)t <= UINT32_MAX && (uint64_t)tiles <= UINT32_MAX) {
    /* The common case in 32-bit arithmetic: 64-bit division is a long subroutine. */
    const uint32_t t32 = (uint32_t)t, tiles32 = (uint32_t)tiles, tiles_x32 = (uint32_t)tiles_x;
    p.plane = t32 / tiles32;
    const uint32_t rest = t32 - (uint32_t)p.plane * tiles32;
    p.my0 = (int64_t)(rest / tiles_x32) * th;
    p.mx0 = (int64_t)(rest % tiles_x32) * kTileW;
    return p;
  }
  p.plane = t / tiles;
  in_plane = t - p.plane * tiles;
  p.my0 = in_plane / tiles_x * th;
  p.mx0 = in_plane % tiles_x * kTileW;
  return p;
}

/* Whether the device's code for `kernel` was compiled for sm_90 or later: not the empty or
 * guarded code of a build for older architectures only, which the driver's PTX compiler runs on
 * a newer GPU. */
template <typename Kernel> cudaError_t has_sm90_code(Kernel kernel, bool *has) {
  cudaFuncAttributes attr;
  const cudaError_t err = cudaFuncGetAttributes(&attr, kernel);
  *has = err == cudaSuccess && attr.ptxVersion >= 90 && attr.binaryVersion >= 90;
  return err;
}

/* Raises a persistent kernel's shared memory limit to `smem` and, when `resident` is not NULL,
 * stores how many of its blocks the whole device holds at once: the size of its grid. */
template <typename Kernel>
cudaError_t prepare_persistent(Kernel kernel, int threads, size_t smem, int sms, int *resident) {
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  int per_sm = 0;
  if (err == cudaSuccess)
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem);
  if (resident != nullptr)
    *resident = per_sm > 0 ? per_sm * sms : sms;
  return err;
}

/*
 * Horizontal blur of NS staged planes (ROWS x kPitch each, at `in`) into NS planes of
 * ROWS x kTileW (at `out`). Each work item is 4 adjacent outputs of one row: their 14 inputs per
 * plane are the first 14 of four 16-byte loads, so shared-memory traffic stays under the FMA
 * rate. With STATS, the two staged planes are images x and y and the five outputs are the blurs
 * of x, x^2, y, y^2 and xy; otherwise each staged plane is blurred as it is.
 */
template <int NS, bool STATS, int ROWS, int THREADS>
__device__ __forceinline__ void blur_rows(const float *__restrict__ in, float *__restrict__ out) {
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
  constexpr int NIN = STATS ? 2 : NS;
  for (int item = threadIdx.x; item < ROWS * kGroups; item += THREADS) {
    const int r = item / kGroups, k = item % kGroups;
    /* Output o of group k sits at staged column 4k + o + kLeft: its taps start at 4k + o. */
    float v[NIN][16];
#pragma unroll
    for (int p = 0; p < NIN; p++) {
      const float4 *src = reinterpret_cast<const float4 *>(in + (p * ROWS + r) * kPitch) + k;
#pragma unroll
      for (int q = 0; q < 4; q++) {
        const float4 f = src[q];
        v[p][4 * q] = f.x;
        v[p][4 * q + 1] = f.y;
        v[p][4 * q + 2] = f.z;
        v[p][4 * q + 3] = f.w;
      }
    }
    float acc[NS][4];
#pragma unroll
    for (int s = 0; s < NS; s++)
#pragma unroll
      for (int o = 0; o < 4; o++)
        acc[s][o] = 0.0f;
    if constexpr (STATS) {
      float xx[14], yy[14], xy[14];
#pragma unroll
      for (int q = 0; q < 14; q++) {
        const float x = v[0][q], y = v[1][q];
        xx[q] = x * x;
        yy[q] = y * y;
        xy[q] = x * y;
      }
#pragma unroll
      for (int t = 0; t < SSIM_WINDOW; t++)
#pragma unroll
        for (int o = 0; o < 4; o++) {
          const int q = o + t;
          acc[0][o] = fmaf(w[t], v[0][q], acc[0][o]);
          acc[1][o] = fmaf(w[t], xx[q], acc[1][o]);
          acc[2][o] = fmaf(w[t], v[1][q], acc[2][o]);
          acc[3][o] = fmaf(w[t], yy[q], acc[3][o]);
          acc[4][o] = fmaf(w[t], xy[q], acc[4][o]);
        }
    } else {
#pragma unroll
      for (int t = 0; t < SSIM_WINDOW; t++)
#pragma unroll
        for (int o = 0; o < 4; o++)
#pragma unroll
          for (int s = 0; s < NS; s++)
            acc[s][o] = fmaf(w[t], v[s][o + t], acc[s][o]);
    }
#pragma unroll
    for (int s = 0; s < NS; s++)
      reinterpret_cast<float4 *>(out + (s * ROWS + r) * kTileW)[k] =
          make_float4(acc[s][0], acc[s][1], acc[s][2], acc[s][3]);
  }
}

/*
 * Vertical blur of NS horizontally blurred planes (ROWS x kTileW each, at `in`): this thread's
 * column `col`, output rows first_row .. first_row + M - 1 of the tile, into acc[M][NS]. Each
 * staged row is read once and added into every output whose window covers it.
 */
template <int NS, int M, int ROWS>
__device__ __forceinline__ void blur_column(const float *__restrict__ in, int col, int first_row,
                                            float (&acc)[M][NS]) {
  constexpr float w[SSIM_WINDOW] = SSIM__GAUSS_TAPS;
#pragma unroll
  for (int i = 0; i < M; i++)
#pragma unroll
    for (int s = 0; s < NS; s++)
      acc[i][s] = 0.0f;
#pragma unroll
  for (int r = 0; r < M + SSIM_WINDOW - 1; r++) {
    float v[NS];
#pragma unroll
    for (int s = 0; s < NS; s++)
      v[s] = in[(s * ROWS + first_row + r) * kTileW + col];
#pragma unroll
    for (int i = 0; i < M; i++) {
      const int t = r - i;
      if (t >= 0 && t < SSIM_WINDOW)
#pragma unroll
        for (int s = 0; s < NS; s++)
          acc[i][s] = fmaf(w[t], v[s], acc[i][s]);
    }
  }
}

} // namespace ssim_cuda

#endif /* SSIM_CUDA_TILE_CUH */
