/*
 * backward.cu: the fused backward kernel, d score / d img1 and / or d img2.
 *
 * Derivation. Take the raw window moments as the variables: mu1 = G*x, mu2 = G*y,
 * e11 = G*(x^2), e22 = G*(y^2), e12 = G*(xy), so S = f(mu1, mu2, s11, s22, s12) with
 * s11 = e11 - mu1^2, s12 = e12 - mu1 mu2 (the clamp of s11, s22 at 0 passes the gradient through,
 * as in fused-ssim). At fixed e, dS/dmu1 = df/dmu1 - 2 mu1 df/ds11 - mu2 df/ds12, which expands
 * to fused-ssim's four-term formula; dS/de11 = df/ds11 = -Cn D / (A B^2), dS/de12 = df/ds12 =
 * 2 Cn / (A B). For L = sum_p g_p S_p (g = dL/dmap), each moment is a blur of x, x^2 or xy and
 * the Gaussian is symmetric, so the adjoint of each blur is the same blur:
 *   dL/dx = G*(g dS/dmu1) + 2x G*(g dS/de11) + y G*(g dS/de12)
 *   dL/dy = G*(g dS/dmu2) + 2y G*(g dS/de22) + x G*(g dS/de12),   dS/de22 = dS/de11.
 * The sums over p run over the map only, so the planes are zero outside it (zero padding, and
 * for padding=valid the crop). The forward kernel writes the products as planes: P0 = g dS/dmu of
 * the image differentiated, P1 = g dS/de11, P2 = g dS/de12, and P3 = g dS/dmu2 when both
 * gradients are wanted: both share P1 and P2, so the second costs one plane. This kernel blurs
 * the planes once and combines them with the pixel values.
 */
#include "cuda_tile.cuh"

namespace ssim_cuda {
namespace {

/* Tiles of TH rows; each thread blurs one column for M of them. 32-row tiles (sm_80 and later)
 * halve the share of recomputed halo rows; 16-row tiles fit the 64 KiB of sm_75. */
template <int NP, int TH> struct backward_config {
  static constexpr int rows = TH + 2 * SSIM_HALO;
  static constexpr int M = TH == 32 ? 8 : 4;
  static constexpr int threads = kTileW * TH / M;
  static constexpr size_t smem = (size_t)NP * rows * (kPitch + kTileW) * sizeof(float);
};

/* The gradients of one thread's column: rows `rows` of M from pixel idx0, one image row apart.
 * The dtype is resolved once per thread, outside the loop. */
template <int NP, int M, typename T>
__device__ __forceinline__ void
write_gradients(const T *__restrict__ a_px, const T *__restrict__ b_px,
                const ssim_cuda_backward_args &args, int64_t idx0, int rows, int64_t width,
                const float (&acc)[M][NP]) {
  /* All loads first, so that they are in flight together (stores could alias them). */
  float a[M], b[M];
#pragma unroll
  for (int i = 0; i < M; i++) {
    a[i] = i < rows ? to_unit(__ldg(a_px + i * width)) : 0.0f;
    b[i] = i < rows ? to_unit(__ldg(b_px + i * width)) : 0.0f;
  }
  float *ga = args.grad_a + idx0;
  float *gb = NP == 4 ? args.grad_b + idx0 : nullptr;
#pragma unroll
  for (int i = 0; i < M; i++) {
    if (i >= rows)
      break;
    ga[i * width] = acc[i][0] + (2.0f * a[i]) * acc[i][1] + b[i] * acc[i][2];
    if constexpr (NP == 4)
      gb[i * width] = acc[i][3] + (2.0f * b[i]) * acc[i][1] + a[i] * acc[i][2];
  }
}

template <int NP, int TH>
__global__ void __launch_bounds__(backward_config<NP, TH>::threads)
    backward_kernel(const ssim_cuda_geometry geo, const ssim_cuda_backward_args args,
                    int64_t tiles_x) {
  using cfg = backward_config<NP, TH>;
  constexpr int ROWS = cfg::rows, M = cfg::M, THREADS = cfg::threads;
  extern __shared__ float4 smem4[];
  float *s_in = reinterpret_cast<float *>(smem4);
  float *s_h = s_in + NP * ROWS * kPitch;

  const int64_t plane = blockIdx.y;
  const int64_t tile_y = blockIdx.x / tiles_x, tile_x = blockIdx.x % tiles_x;
  const int64_t iy0 = tile_y * TH, ix0 = tile_x * kTileW; /* image coordinates */
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;

  /* Stage the derivative planes around the tile, a warp per row. They live on the map grid:
   * image pixel (iy, ix) is map pixel (iy - offset, ix - offset), and zero outside the map (zero
   * padding of the blur; for padding=valid, g is zero outside the crop). */
  const float *deriv = args.deriv + plane * map_px;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t mx0 = ix0 - kLeft - geo.offset + lane;
  bool col_ok[3];
#pragma unroll
  for (int q = 0; q < 3; q++)
    col_ok[q] = 32 * q + lane < kPitch && (uint64_t)(mx0 + 32 * q) < (uint64_t)geo.map_w;
  /* Every load of the stage is issued before the first store: a fully unrolled loop over the
   * rows of this warp. */
  constexpr int kWarps = THREADS / 32, kRowsPerWarp = (ROWS + kWarps - 1) / kWarps;
  const int64_t my0 = iy0 - SSIM_HALO - geo.offset + warp;
  float v[kRowsPerWarp][NP][3];
#pragma unroll
  for (int j = 0; j < kRowsPerWarp; j++) {
    const int64_t my = my0 + kWarps * j;
    const bool row_ok = warp + kWarps * j < ROWS && (uint64_t)my < (uint64_t)geo.map_h;
    const int64_t off = my * geo.map_w + mx0;
#pragma unroll
    for (int k = 0; k < NP; k++)
#pragma unroll
      for (int q = 0; q < 3; q++)
        v[j][k][q] =
            row_ok && col_ok[q] ? __ldg(deriv + k * args.deriv_stride + off + 32 * q) : 0.0f;
  }
#pragma unroll
  for (int j = 0; j < kRowsPerWarp; j++) {
    const int r = warp + kWarps * j;
#pragma unroll
    for (int q = 0; q < 3; q++)
      if (r < ROWS && 32 * q + lane < kPitch)
#pragma unroll
        for (int k = 0; k < NP; k++)
          s_in[(k * ROWS + r) * kPitch + 32 * q + lane] = v[j][k][q];
  }
  __syncthreads();
  blur_rows<NP, false, ROWS, THREADS>(s_in, s_h);
  __syncthreads();

  const int col = threadIdx.x % kTileW, group = threadIdx.x / kTileW;
  float acc[M][NP];
  blur_column<NP, M, ROWS>(s_h, col, group * M, acc);

  const int64_t first = iy0 + group * M;
  const int rows = ix0 + col < geo.width ? (int)min((int64_t)M, geo.height - first) : 0;
  const int64_t idx0 = plane * img_px + first * geo.width + ix0 + col;
  switch (geo.dtype) {
  case SSIM_DTYPE_U8:
    write_gradients<NP, M>(static_cast<const uint8_t *>(args.img_a) + idx0,
                           static_cast<const uint8_t *>(args.img_b) + idx0, args, idx0, rows,
                           geo.width, acc);
    break;
  case SSIM_DTYPE_U16:
    write_gradients<NP, M>(static_cast<const uint16_t *>(args.img_a) + idx0,
                           static_cast<const uint16_t *>(args.img_b) + idx0, args, idx0, rows,
                           geo.width, acc);
    break;
  default:
    write_gradients<NP, M>(static_cast<const float *>(args.img_a) + idx0,
                           static_cast<const float *>(args.img_b) + idx0, args, idx0, rows,
                           geo.width, acc);
    break;
  }
}

template <int NP, int TH>
cudaError_t launch_backward(const ssim_cuda_geometry &geo, const ssim_cuda_backward_args &args,
                            cudaStream_t stream) {
  using cfg = backward_config<NP, TH>;
  const int64_t tiles_y = div_up(geo.height, TH), tiles_x = div_up(geo.width, kTileW);
  const int64_t tiles = tiles_y * tiles_x;
  if (tiles > INT32_MAX)
    return cudaErrorInvalidConfiguration;
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;
  const int64_t esize = (int64_t)ssim_cuda_dtype_size(geo.dtype);
  for (int64_t p0 = 0; p0 < args.planes; p0 += kMaxPlanesPerLaunch) {
    ssim_cuda_backward_args part = args;
    part.planes = min(args.planes - p0, (int64_t)kMaxPlanesPerLaunch);
    part.img_a = static_cast<const char *>(args.img_a) + p0 * img_px * esize;
    part.img_b = static_cast<const char *>(args.img_b) + p0 * img_px * esize;
    part.deriv = args.deriv + p0 * map_px;
    part.grad_a = args.grad_a + p0 * img_px;
    if (args.grad_b != nullptr)
      part.grad_b = args.grad_b + p0 * img_px;
    const dim3 grid((unsigned)tiles, (unsigned)part.planes);
    backward_kernel<NP, TH><<<grid, cfg::threads, cfg::smem, stream>>>(geo, part, tiles_x);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
      return err;
  }
  return cudaSuccess;
}

template <int NP, int TH> cudaError_t set_backward_smem() {
  return cudaFuncSetAttribute(backward_kernel<NP, TH>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)backward_config<NP, TH>::smem);
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

int ssim_cuda_backward_tile_h(int shared_per_block_optin) {
  return shared_per_block_optin >= (int)backward_config<4, 32>::smem ? 32 : 16;
}

cudaError_t ssim_cuda_backward_init(int tile_h) {
  cudaError_t err = tile_h == 32 ? set_backward_smem<3, 32>() : set_backward_smem<3, 16>();
  if (err == cudaSuccess)
    err = tile_h == 32 ? set_backward_smem<4, 32>() : set_backward_smem<4, 16>();
  return err;
}

cudaError_t ssim_cuda_backward(const ssim_cuda_geometry *geo, int tile_h,
                               const ssim_cuda_backward_args *args, cudaStream_t stream) {
  if (tile_h == 32)
    return args->deriv_count == 4 ? launch_backward<4, 32>(*geo, *args, stream)
                                  : launch_backward<3, 32>(*geo, *args, stream);
  return args->deriv_count == 4 ? launch_backward<4, 16>(*geo, *args, stream)
                                : launch_backward<3, 16>(*geo, *args, stream);
}
