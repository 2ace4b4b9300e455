/*
 * ssim.h: the public API of the SSIM engine.
 *
 * The engine computes SSIM (Wang et al. 2004, as fused-ssim computes it: 11x11 Gaussian window,
 * sigma 1.5, C1 = 0.01^2, C2 = 0.03^2, float32 arithmetic, variances clamped at 0, the map
 * clamped to [-1, 1]) and its gradients, on batches of image pairs of one shape.
 *
 * It knows nothing of HTTP or files. This is the only engine header the rest of the project
 * includes. Thread rules: an engine handle is used by one thread at a time; distinct handles
 * are independent. Nothing in the engine prints or exits.
 */
#ifndef SSIM_H
#define SSIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Window geometry. The map of padding=valid is cropped by SSIM_HALO on every side. */
#define SSIM_WINDOW 11
#define SSIM_HALO 5
/* Edge of the square blocks of ssim_outputs.block_means. */
#define SSIM_BLOCK 32

/*
 * Error codes: negative integers, generated with their names and messages from one map.
 * 0 is success.
 */
#define SSIM_ERRNO_MAP(X)                                                                         \
  X(EINVAL, -1, "invalid argument")                                                               \
  X(ENULL, -2, "a required buffer is NULL")                                                       \
  X(ESHAPE, -3, "every image dimension and the batch size must be at least 1")                    \
  X(EOVERFLOW, -4, "batch x channels x height x width overflows the address space")               \
  X(ETOOSMALL, -5, "padding=valid needs images of at least 11x11 pixels")                         \
  X(ENONFINITE, -6, "the input contains NaN or infinity")                                         \
  X(ENOMEM, -7, "out of memory")                                                                  \
  X(ENOBACKEND, -8, "the requested backend is not built or has no usable device")                 \
  X(EUNSUPPORTED, -9, "the backend does not support this request")                                \
  X(EDEVICE, -10, "the device reported an error")                                                 \
  X(ETHREAD, -11, "worker threads could not be started")

typedef enum {
#define SSIM__ERRNO_ENUM(name, code, msg) SSIM_##name = (code),
  SSIM_ERRNO_MAP(SSIM__ERRNO_ENUM)
#undef SSIM__ERRNO_ENUM
} ssim_errno;

/* Static name of an error code ("SSIM_EINVAL"), or "SSIM_UNKNOWN". Never NULL. */
const char *ssim_err_name(int err);
/* Static one-line message for an error code. Never NULL. */
const char *ssim_strerror(int err);

typedef enum {
  SSIM_DTYPE_U8 = 0,  /* uint8_t, scaled by 1/255 */
  SSIM_DTYPE_U16 = 1, /* uint16_t, scaled by 1/65535 */
  SSIM_DTYPE_F32 = 2  /* float, used as is (expected in [0, 1]; not clamped) */
} ssim_dtype;

typedef enum {
  SSIM_PADDING_SAME = 0, /* zero padding; the map has the image's size */
  SSIM_PADDING_VALID = 1 /* the map is cropped by SSIM_HALO on every side */
} ssim_padding;

typedef enum {
  SSIM_MEMORY_HOST = 0,  /* image, map and gradient buffers are in host memory */
  SSIM_MEMORY_DEVICE = 1 /* they are in the backend's device memory (scores stay on the host,
                            but for ssim_compute_async) */
} ssim_memory;

/* A batch of `batch` pairs, each of `channels` planes of height x width, stored NCHW. */
struct ssim_shape {
  size_t batch;
  size_t channels;
  size_t height;
  size_t width;
};

/* The inputs of one engine call. Both images have the same shape and dtype. */
struct ssim_inputs {
  struct ssim_shape shape;
  ssim_dtype dtype;
  ssim_padding padding;
  ssim_memory memory;
  const void *img1; /* the image under test: batch*channels*height*width elements */
  const void *img2; /* the reference: same size */
};

/*
 * The outputs of ssim_compute. Every pointer but `scores` is optional (NULL: not computed).
 * All are caller-owned and fully written on success; on failure their contents are unspecified.
 * map_h x map_w is height x width for SSIM_PADDING_SAME and (height-10) x (width-10) for VALID.
 */
struct ssim_outputs {
  double *scores;         /* batch: the mean of each pair's map over every pixel and channel */
  double *channel_scores; /* batch*channels: the mean per channel */
  float *map;             /* batch*channels*map_h*map_w: the SSIM map */
  /* batch*ceil(map_h/32)*ceil(map_w/32): the mean SSIM of each 32x32 block of the map on a
   * 32-pixel grid (blocks clipped at the map's edges), over the block's pixels and all channels.
   * Lets a caller find the worst region without copying the map. */
  float *block_means;
  float *grad_img1; /* batch*channels*height*width: d scores[n] / d img1 of pair n */
  float *grad_img2; /* batch*channels*height*width: d scores[n] / d img2 of pair n */
};

/* How an engine is created. Initialise with ssim_engine_options_init before setting fields. */
struct ssim_engine_options {
  const char *backend; /* "auto" (or NULL): a GPU backend whose device answers, else "cpu";
                          "cpu", "cuda", "sycl": that backend or SSIM_ENOBACKEND */
  int threads;         /* CPU worker threads; 0 = number of online cores */
  int device;          /* GPU ordinal for GPU backends; default 0 */
};

typedef struct ssim_engine ssim_engine_t;

/* Fill `opts` with the defaults: backend "auto", threads 0, device 0. */
void ssim_engine_options_init(struct ssim_engine_options *opts);

/*
 * Create an engine. On success *out is a new handle, owned by the caller and released with
 * ssim_engine_destroy. Errors: SSIM_ENULL, SSIM_EINVAL (unknown backend name or threads < 0),
 * SSIM_ENOBACKEND, SSIM_ENOMEM, SSIM_ETHREAD, SSIM_EDEVICE. `detail`, when not NULL, receives a
 * message of at most `detail_size` bytes saying why creation failed (e.g. the CUDA message).
 */
int ssim_engine_create(const struct ssim_engine_options *opts, ssim_engine_t **out, char *detail,
                       size_t detail_size);

/* Release an engine and everything it holds. NULL is allowed. */
void ssim_engine_destroy(ssim_engine_t *engine);

/* Static name of the backend in use ("cpu", "cuda", "sycl"). */
const char *ssim_engine_backend_name(const ssim_engine_t *engine);

/* Name of the device the engine runs on (CPU model or GPU name). Owned by the engine. */
const char *ssim_engine_device_name(const ssim_engine_t *engine);

/*
 * Message of the last failed call on this engine, with the backend's detail when it has one
 * (e.g. "SSIM_EDEVICE: cudaMalloc: out of memory"). Owned by the engine; valid until the next
 * call. Empty when the last call succeeded.
 */
const char *ssim_engine_last_error(const ssim_engine_t *engine);

/*
 * Size of the map for an image of `height` x `width` under `padding`.
 * Returns 0, or SSIM_ESHAPE / SSIM_ETOOSMALL / SSIM_ENULL.
 */
int ssim_map_size(size_t height, size_t width, ssim_padding padding, size_t *map_height,
                  size_t *map_width);

/*
 * Forward pass, and on request the gradients of each pair's score with respect to either or both
 * images (computed together in one backward pass when both are asked for).
 * Errors: SSIM_ENULL, SSIM_ESHAPE, SSIM_EOVERFLOW, SSIM_ETOOSMALL, SSIM_ENONFINITE (float input
 * only), SSIM_EINVAL (bad enum value), SSIM_ENOMEM, SSIM_EDEVICE, SSIM_EUNSUPPORTED.
 */
int ssim_compute(ssim_engine_t *engine, const struct ssim_inputs *in,
                 const struct ssim_outputs *out);

/*
 * ssim_compute as a stream-ordered operation on device memory, for callers that keep their
 * images on the GPU and chain work on a stream of their own (as a framework runs an operator).
 * in->memory must be SSIM_MEMORY_DEVICE, and every output is device memory, `scores`,
 * `channel_scores` and `block_means` included. `stream` is the backend's stream: a cudaStream_t
 * for "cuda" (NULL: the default stream). The work is queued on it, after whatever was queued
 * there before and after the engine's own previous call, and the call returns without waiting:
 * the outputs are ready when the stream has reached this point (the caller synchronises, or
 * queues more work behind it). Non-finite float input cannot fail a call that has returned:
 * every score and channel score of the call is NaN instead (its map and block means are then
 * unspecified).
 * Errors, all before anything is queued: as ssim_compute, SSIM_EINVAL when in->memory is not
 * SSIM_MEMORY_DEVICE, SSIM_EUNSUPPORTED on a backend without device memory ("cpu"), and
 * SSIM_EDEVICE for a launch the device refused.
 */
int ssim_compute_async(ssim_engine_t *engine, const struct ssim_inputs *in,
                       const struct ssim_outputs *out, void *stream);

/*
 * General backward pass, SSIM as a differentiable operator: given dL/dmap (batch*channels*
 * map_h*map_w floats, in in->memory), writes dL/dimg1 and/or dL/dimg2 (batch*channels*height*
 * width each; either may be NULL, not both). The forward statistics are recomputed inside the
 * same fused pass; nothing has to be kept from an earlier ssim_compute.
 * Errors: as ssim_compute.
 */
int ssim_backward(ssim_engine_t *engine, const struct ssim_inputs *in, const float *grad_map,
                  float *grad_img1, float *grad_img2);

/* Number of backends built into this library, and the static name of the i-th (NULL past the
 * end), GPU backends first, "cpu" last. */
size_t ssim_backend_count(void);
const char *ssim_backend_name_at(size_t index);

#ifdef __cplusplus
}
#endif

#endif /* SSIM_H */
