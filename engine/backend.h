/*
 * backend.h: the seam between engine.c and the backends. Internal to engine/.
 *
 * A backend is a `static const struct ssim__backend` with designated initializers, defined in its
 * own folder and listed in the registry of engine.c when it is built. engine.c validates every
 * argument (pointers, enums, sizes, overflow, the valid-padding minimum) before calling a slot,
 * so slots may assume a well-formed request; they still own the checks only they can do cheaply
 * (non-finite float input, device errors).
 */
#ifndef SSIM_BACKEND_H
#define SSIM_BACKEND_H

#include "ssim.h"

/* Size of the detail buffer a slot may write its message into (always NUL-terminated). */
#define SSIM__DETAIL_MAX 256

struct ssim__backend {
  /* Required. Static name: "cpu", "cuda", "sycl". */
  const char *name;

  /* Required. Create the backend's state for these options. Returns 0, SSIM_ENOBACKEND when no
   * usable device answers, or another error code; writes why into `detail`. *state is owned by
   * the engine and released with destroy. */
  int (*create)(const struct ssim_engine_options *opts, void **state, char *detail);

  /* Required. Release the state (NULL allowed). */
  void (*destroy)(void *state);

  /* Optional; default: the backend's name. Device name, owned by the state. */
  const char *(*device_name)(void *state);

  /* Required. ssim_compute for a validated request. Float input containing NaN or Inf must be
   * answered SSIM_ENONFINITE. A backend may answer SSIM_EUNSUPPORTED for a case it does not
   * handle (engine.c then falls back to the CPU backend for host memory). */
  int (*compute)(void *state, const struct ssim_inputs *in, const struct ssim_outputs *out,
                 char *detail);

  /* Required. ssim_backward for a validated request (at least one gradient non-NULL). */
  int (*backward)(void *state, const struct ssim_inputs *in, const float *grad_map,
                  float *grad_img1, float *grad_img2, char *detail);

  /* Optional (NULL: SSIM_EUNSUPPORTED). ssim_compute_async for a validated device-memory
   * request: queue the work on `stream` and return without waiting for it. */
  int (*compute_async)(void *state, const struct ssim_inputs *in, const struct ssim_outputs *out,
                       void *stream, char *detail);
};

/* Backends, each defined in its folder; declared here so the registry can list them. */
extern const struct ssim__backend ssim__backend_cpu;
#ifdef SSIM_HAVE_CUDA
extern const struct ssim__backend ssim__backend_cuda;
#endif
#ifdef SSIM_HAVE_SYCL
extern const struct ssim__backend ssim__backend_sycl;
#endif

#endif /* SSIM_BACKEND_H */
