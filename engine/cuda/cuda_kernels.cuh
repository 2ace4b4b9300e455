/*
 * cuda_kernels.cuh: the kernels of the CUDA backend as the host code of this folder sees them.
 * Internal to engine/cuda; nothing outside this folder includes it.
 *
 * Every plane (one channel of one image) is processed on its own. The forward kernels run
 * persistent grids (one block per resident slot): the training kernel walks the tiles of every
 * plane of a launch, the inference kernel equal shares of the rows of the planes' vertical strips;
 * the backward kernel's grid has the tiles of a plane in x and the planes in y (launched in
 * groups of at most 65535 planes). Pixels are addressed with 64-bit arithmetic, so any size
 * the engine accepts is indexed correctly.
 */
#ifndef SSIM_CUDA_KERNELS_CUH
#define SSIM_CUDA_KERNELS_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "ssim.h"

/* Bytes of one pixel of an ssim_dtype. */
__host__ __device__ inline size_t ssim_cuda_dtype_size(int dtype) {
  return dtype == SSIM_DTYPE_U8 ? 1 : dtype == SSIM_DTYPE_U16 ? 2 : 4;
}

/* Output tiles are 64 pixels wide: two columns of SSIM_BLOCK blocks, so that the per-tile sums
 * of the forward pass are also the block sums of ssim_outputs.block_means. */
#define SSIM_CUDA_TILE_W 64

/* What every kernel knows of the request. */
struct ssim_cuda_geometry {
  int64_t height, width; /* image */
  int64_t map_h, map_w;  /* map: the image, or the image cropped by SSIM_HALO */
  int offset;            /* image coordinate of map pixel 0: 0 (same) or SSIM_HALO (valid) */
  int dtype;             /* ssim_dtype of the images */
  int channels;
  float center;    /* subtracted from the pixel values before the moments (see forward.cu) */
  int sum_shift;   /* the planes' fixed-point sums count 2^-sum_shift (ssim_cuda_sum_shift) */
  float sum_scale; /* 2^sum_shift */
  /* A channel score per unit of its plane's fixed-point sum, and a score per unit of its pair's:
   * 2^-sum_shift over the map pixels of a plane, of a pair (set on the host, so that no kernel
   * divides in doubles: plane_score, pair_score). */
  double plane_unit, pair_unit;
};

/*
 * The scale of the planes' fixed-point sums (scores.cuh), as a power of two: the largest, at
 * most 2^40, with which a pair's sum of |SSIM| <= 1 over `pair_pixels` map pixels stays below
 * 2^62, so that neither a plane's nor a pair's sum can overflow 64 bits.
 */
inline int ssim_cuda_sum_shift(int64_t pair_pixels) {
  int bits = 0; /* of pair_pixels */
  while (bits < 63 && ((int64_t)1 << bits) <= pair_pixels)
    bits++;
  return 62 - bits < 40 ? 62 - bits : 40;
}

/*
 * Forward pass over `planes` consecutive planes. The image pointers point at the first plane of
 * the launch. Optional outputs (NULL: not written):
 *   map        the SSIM map of those planes (map_h x map_w each)
 *   partials   the sums of the map's 32 x 32 blocks (see ssim_cuda_partials), for block means
 *   deriv      training: the products g * dS/d(statistic) that the backward pass blurs, 3 or 4
 *              sets (see ssim_cuda_deriv_mode) of `planes` map-sized planes, set k at
 *              deriv + k * deriv_stride
 * g is grad_map[pixel] when grad_map is not NULL (map-sized planes like `map`), else grad_scale.
 *   plane_sums the launch's planes' sums of the map, in fixed point (scores.cuh): every block's
 *              sum is added to one of its plane's sum_slots slots, slot k of plane p at
 *              plane_sums[k * sum_stride + p]
 * `*nonfinite` is set to `call` when a float input holds NaN or infinity: the flag is never
 * cleared, each engine call has an id of its own, and the flag concerns a call when it holds
 * that call's id.
 */
enum ssim_cuda_deriv_mode {
  SSIM_CUDA_DERIV_NONE = 0,
  SSIM_CUDA_DERIV_IMG1 = 1, /* planes: g dS/dmu1, g dS/ds11, g dS/ds12 */
  SSIM_CUDA_DERIV_IMG2 = 2, /* planes: g dS/dmu2, g dS/ds22, g dS/ds12 */
  SSIM_CUDA_DERIV_BOTH = 3  /* planes: g dS/dmu1, g dS/ds11, g dS/ds12, g dS/dmu2 */
};

/*
 * Scores written by an inference launch itself instead of by ssim_cuda_finalize afterwards
 * (scores NULL: not). Only for a launch of every plane of a call of at most
 * SSIM_CUDA_FINISH_MAX_PAIRS pairs and SSIM_CUDA_FINISH_MAX_PLANES planes: scores double[pairs],
 * channel_scores double[planes], from the sums the launch adds to plane_sums, which it leaves at
 * zero; flag_copy (when not NULL) receives the non-finite flag's value at the end, and when that
 * is the call's id every score and channel score is NaN. `counters` is a zero that every launch
 * leaves so; launches that share it must not overlap. The bits are those of ssim_cuda_finalize.
 */
struct ssim_cuda_finish {
  double *scores;
  double *channel_scores;
  unsigned *flag_copy;
  unsigned long long *counters;
};

/* A plane's sum is kept in up to this many slots, added by different blocks, whose total it is:
 * the atomic adds of blocks that finish their work at the same time then go to different cache
 * lines (sum_stride is a multiple of 16 entries, 128 bytes) instead of queueing on one. */
#define SSIM_CUDA_SUM_SLOTS 16

/* The slots of a call of `planes` planes: 16 where few planes take the adds of many blocks,
 * fewer where many planes share them, so that a call's slots are at most 256 (the in-launch
 * finish reads them in one round: 64 threads or more, 4 reads in flight each). */
inline int ssim_cuda_sum_slots(int64_t planes) {
  int slots = SSIM_CUDA_SUM_SLOTS;
  while (slots > 1 && planes * slots > 256)
    slots /= 2;
  return slots;
}
inline int64_t ssim_cuda_sum_stride(int64_t planes) {
  return (planes + 15) / 16 * 16;
}

/* The launches that can finish themselves: those of at most this many pairs and planes, whose
 * planes' sums one block adds up in shared memory and whose scores its threads write in a round
 * or two (the finalize kernel has a thread a pair). */
#define SSIM_CUDA_FINISH_MAX_PAIRS 256
#define SSIM_CUDA_FINISH_MAX_PLANES 1024

struct ssim_cuda_forward_args {
  const void *img1, *img2;
  int64_t planes;
  float *map;
  float *partials;
  unsigned long long *plane_sums; /* of the launch's first plane; see scores.cuh */
  int64_t sum_stride;             /* between a plane's slots */
  int sum_slots;                  /* slots a plane (ssim_cuda_sum_slots): a power of two */
  struct ssim_cuda_finish finish; /* inference only */
  float *deriv;
  int64_t deriv_stride;
  enum ssim_cuda_deriv_mode deriv_mode;
  const float *grad_map;
  float grad_scale;
  unsigned *nonfinite;
  unsigned call;
};

/* Tile height of the training forward kernel on the current device (the row count of one tile). */
int ssim_cuda_forward_tile_h(int shared_per_block_optin);

/*
 * Where a forward launch leaves the sums of the map's 32 x 32 blocks (the `partials` argument):
 * per plane, piece_rows rows of `pitch` floats. Block (by, bx) is the total of the entries
 * (by * pieces + p) * pitch + bx for p < pieces (those rows that exist); every entry of a plane
 * is written, entries of no block with 0, so the plane's map sum is the sum of all of them.
 */
struct ssim_cuda_partials {
  int64_t piece_rows;
  int64_t pitch; /* block columns rounded up to an even count */
  int pieces;    /* rows of entries per block row */
};

/* The layout of a training launch (derivative planes asked for), or of an inference launch. */
void ssim_cuda_forward_partials(const struct ssim_cuda_geometry *geo, int tile_h, bool training,
                                struct ssim_cuda_partials *layout);

/* Strip widths of the inference kernels (infer.cu, infer_tma.cu). */
#define SSIM_CUDA_INFER_WIDTHS 3

/* The TMA inference kernels of sm_90 and later (infer_tma.cu): their grid sizes per strip width
 * (0 where not available) and the driver's tensor-map encoder (NULL where they are not used). */
struct ssim_cuda_tma {
  int resident[SSIM_CUDA_INFER_WIDTHS];
  void *encode;
};

/* Persistent grid sizes: one per inference strip width (0 where it does not fit the device),
 * those of the TMA inference kernels, and the training kernel's. */
struct ssim_cuda_resident {
  int infer[SSIM_CUDA_INFER_WIDTHS];
  struct ssim_cuda_tma tma;
  int train;
};

/* Raise the kernels' dynamic shared memory limits and size their persistent grids; call once
 * per device. They are also the first calls that need the kernels' code for this device, so
 * they fail when it is missing. */
cudaError_t ssim_cuda_forward_init(int tile_h, int multiprocessors, int shared_per_block_optin,
                                   struct ssim_cuda_resident *resident);
cudaError_t ssim_cuda_backward_init(int tile_h);

/* Tile height of the backward kernels on the current device. */
int ssim_cuda_backward_tile_h(int shared_per_block_optin);

/* The training kernel when args->deriv is set, else the inference kernel. */
cudaError_t ssim_cuda_forward(const struct ssim_cuda_geometry *geo, int tile_h,
                              const struct ssim_cuda_resident *resident,
                              const struct ssim_cuda_forward_args *args, cudaStream_t stream);

/* The inference kernels: their setup (by ssim_cuda_forward_init), the launch of the TMA kernel
 * where it applies and of infer.cu's strip kernel elsewhere, and their layout of partial sums
 * (the same for both). */
cudaError_t ssim_cuda_infer_init(int multiprocessors, int shared_per_block_optin,
                                 struct ssim_cuda_resident *resident);
cudaError_t ssim_cuda_infer(const struct ssim_cuda_geometry *geo,
                            const struct ssim_cuda_resident *resident,
                            const struct ssim_cuda_forward_args *args, cudaStream_t stream);
/* infer_tma.cu: *launched says whether the TMA kernel took the call (else nothing was queued). */
cudaError_t ssim_cuda_infer_tma_init(int multiprocessors, int shared_per_block_optin,
                                     struct ssim_cuda_tma *tma);
cudaError_t ssim_cuda_infer_tma(const struct ssim_cuda_geometry *geo,
                                const struct ssim_cuda_tma *tma,
                                const struct ssim_cuda_forward_args *args, cudaStream_t stream,
                                bool *launched);
void ssim_cuda_infer_partials(const struct ssim_cuda_geometry *geo,
                              struct ssim_cuda_partials *layout);

/*
 * Writes the scores of `pairs` pairs (double[pairs]) and their channel scores (double[pairs *
 * channels]) from the planes' fixed-point sums that the forward launches added to plane_sums
 * (from plane 0, sum_slots slots sum_stride apart), and sets those sums back to zero. With
 * block_means (float[pairs * blocks]; not written when NULL), also the block means from the partial
 * sums of all the pairs' planes
 * (`partials`, laid out as `layout`), added in a fixed order. When *nonfinite holds `call`,
 * every score and channel score is NaN instead. *flag_copy (when not NULL) receives the flag's
 * value, for the host to read with the results. The scores have the bits of an in-kernel finish
 * (ssim_cuda_finish). With `early` (sm_90 and later, where the launch just before it on `stream`
 * is the forward kernel whose sums it reads), the kernel is launched as a programmatic
 * dependent: its blocks may start while the forward kernel runs and wait on the device for it to
 * end, which saves the gap between two launches.
 */
cudaError_t ssim_cuda_finalize(const struct ssim_cuda_geometry *geo,
                               const struct ssim_cuda_partials *layout, int64_t pairs,
                               const float *partials, unsigned long long *plane_sums,
                               int64_t sum_stride, int sum_slots, double *scores,
                               double *channel_scores, float *block_means,
                               const unsigned *nonfinite, unsigned call, unsigned *flag_copy,
                               cudaStream_t stream, bool early);
/* Whether the current device runs the finalize kernel's own wait for an early launch: code for
 * sm_90 or later, not a build for older GPUs compiled by the driver (which lacks it). */
bool ssim_cuda_finalize_can_wait(void);

/*
 * Backward pass over `planes` planes: blurs the derivative planes written by a training forward
 * pass and combines them with the images: grad_a = G*P0 + 2 a G*P1 + b G*P2 and, with four
 * planes, grad_b = G*P3 + 2 b G*P1 + a G*P2. For d/dimg1 a = img1, b = img2; for d/dimg2 alone
 * (SSIM_CUDA_DERIV_IMG2) a = img2, b = img1, since the formula is symmetric in the two images.
 */
struct ssim_cuda_backward_args {
  const void *img_a, *img_b; /* img1, img2 (swapped for IMG2) */
  int64_t planes;
  const float *deriv;
  int64_t deriv_stride;
  int deriv_count; /* 3 or 4 */
  float *grad_a, *grad_b;
};

cudaError_t ssim_cuda_backward(const struct ssim_cuda_geometry *geo, int tile_h,
                               const struct ssim_cuda_backward_args *args, cudaStream_t stream);

#endif /* SSIM_CUDA_KERNELS_CUH */
