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

constexpr int kBackTileH = 16;
constexpr int kBackRows = kBackTileH + 2 * SSIM_HALO;
constexpr int kBackRowsPerThread = 4;
constexpr int kBackThreads = kTileW * kBackTileH / kBackRowsPerThread;

template <int NP> constexpr size_t backward_smem() {
  return (size_t)NP * kBackRows * (kPitch + kTileW) * sizeof(float);
}

template <int NP>
__global__ void __launch_bounds__(kBackThreads)
    backward_kernel(const ssim_cuda_geometry geo, const ssim_cuda_backward_args args,
                    int64_t tiles_x) {
  constexpr int M = kBackRowsPerThread;
  extern __shared__ float4 smem4[];
  float *s_in = reinterpret_cast<float *>(smem4);
  float *s_h = s_in + NP * kBackRows * kPitch;

  const int64_t plane = blockIdx.y;
  const int64_t tile_y = blockIdx.x / tiles_x, tile_x = blockIdx.x % tiles_x;
  const int64_t iy0 = tile_y * kBackTileH, ix0 = tile_x * kTileW; /* image coordinates */
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;

  /* Stage the derivative planes around the tile. They live on the map grid: image pixel
   * (iy, ix) is map pixel (iy - offset, ix - offset), and zero outside the map (zero padding of
   * the blur; for padding=valid, g is zero outside the crop). */
  const float *deriv = args.deriv + plane * map_px;
#pragma unroll 2
  for (int i = threadIdx.x; i < kBackRows * kPitch; i += kBackThreads) {
    const int r = i / kPitch, j = i - r * kPitch;
    const int64_t my = iy0 - SSIM_HALO + r - geo.offset, mx = ix0 - kLeft + j - geo.offset;
    const bool inside = (uint64_t)my < (uint64_t)geo.map_h && (uint64_t)mx < (uint64_t)geo.map_w;
    const int64_t idx = my * geo.map_w + mx;
#pragma unroll
    for (int k = 0; k < NP; k++)
      s_in[k * kBackRows * kPitch + i] = inside ? __ldg(deriv + k * args.deriv_stride + idx) : 0.0f;
  }
  __syncthreads();
  blur_rows<NP, false, kBackRows, kBackThreads>(s_in, s_h);
  __syncthreads();

  const int col = threadIdx.x % kTileW, group = threadIdx.x / kTileW;
  float acc[M][NP];
  blur_column<NP, M, kBackRows>(s_h, col, group * M, acc);

  const int64_t ix = ix0 + col;
  if (ix >= geo.width)
    return;
#pragma unroll
  for (int i = 0; i < M; i++) {
    const int64_t iy = iy0 + group * M + i;
    if (iy >= geo.height)
      break;
    const int64_t idx = plane * img_px + iy * geo.width + ix;
    const float a = load_unit(args.img_a, geo.dtype, idx);
    const float b = load_unit(args.img_b, geo.dtype, idx);
    args.grad_a[idx] = acc[i][0] + (2.0f * a) * acc[i][1] + b * acc[i][2];
    if constexpr (NP == 4)
      args.grad_b[idx] = acc[i][3] + (2.0f * b) * acc[i][1] + a * acc[i][2];
  }
}

template <int NP>
cudaError_t launch_backward(const ssim_cuda_geometry &geo, const ssim_cuda_backward_args &args,
                            cudaStream_t stream) {
  const int64_t tiles_y = div_up(geo.height, kBackTileH), tiles_x = div_up(geo.width, kTileW);
  const int64_t tiles = tiles_y * tiles_x;
  if (tiles > INT32_MAX)
    return cudaErrorInvalidConfiguration;
  const int64_t img_px = geo.height * geo.width, map_px = geo.map_h * geo.map_w;
  const int64_t esize = geo.dtype == SSIM_DTYPE_U8 ? 1 : geo.dtype == SSIM_DTYPE_U16 ? 2 : 4;
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
    backward_kernel<NP><<<grid, kBackThreads, backward_smem<NP>(), stream>>>(geo, part, tiles_x);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
      return err;
  }
  return cudaSuccess;
}

} // namespace
} // namespace ssim_cuda

using namespace ssim_cuda;

cudaError_t ssim_cuda_backward_init(void) {
  cudaError_t err = cudaFuncSetAttribute(
      backward_kernel<3>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)backward_smem<3>());
  if (err == cudaSuccess)
    err = cudaFuncSetAttribute(backward_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int)backward_smem<4>());
  return err;
}

cudaError_t ssim_cuda_backward(const ssim_cuda_geometry *geo, const ssim_cuda_backward_args *args,
                               cudaStream_t stream) {
  return args->deriv_count == 4 ? launch_backward<4>(*geo, *args, stream)
                                : launch_backward<3>(*geo, *args, stream);
}
