/*
 * bench_engine.c: the engine's public API flattened into scalar arguments, for ctypes.
 *
 * Pointers are passed as plain addresses, so the Python driver can hand over host buffers or,
 * with memory = SSIM_MEMORY_DEVICE, the data_ptr() of CUDA tensors. Nothing here allocates.
 */
#include <stddef.h>

#include "ssim.h"

ssim_engine_t *ssim_bench_open(const char *backend, char *detail, size_t detail_size);
void ssim_bench_close(ssim_engine_t *engine);
const char *ssim_bench_device(ssim_engine_t *engine);
const char *ssim_bench_last_error(ssim_engine_t *engine);
int ssim_bench_compute(ssim_engine_t *engine, int dtype, int padding, int memory, size_t batch,
                       size_t channels, size_t height, size_t width, const void *img1,
                       const void *img2, double *scores, double *channel_scores, float *map,
                       float *block_means, float *grad_img1, float *grad_img2);
int ssim_bench_compute_async(ssim_engine_t *engine, int dtype, int padding, size_t batch,
                             size_t channels, size_t height, size_t width, const void *img1,
                             const void *img2, double *scores, double *channel_scores, float *map,
                             float *block_means, float *grad_img1, float *grad_img2, void *stream);
int ssim_bench_backward(ssim_engine_t *engine, int dtype, int padding, int memory, size_t batch,
                        size_t channels, size_t height, size_t width, const void *img1,
                        const void *img2, const float *grad_map, float *grad_img1,
                        float *grad_img2);

/* A new engine of `backend`, or NULL with the reason in `detail`. */
ssim_engine_t *ssim_bench_open(const char *backend, char *detail, size_t detail_size) {
  struct ssim_engine_options opts;
  ssim_engine_options_init(&opts);
  opts.backend = backend;
  ssim_engine_t *engine = NULL;
  if (ssim_engine_create(&opts, &engine, detail, detail_size) != 0)
    return NULL;
  return engine;
}

void ssim_bench_close(ssim_engine_t *engine) {
  ssim_engine_destroy(engine);
}

const char *ssim_bench_device(ssim_engine_t *engine) {
  return ssim_engine_device_name(engine);
}

const char *ssim_bench_last_error(ssim_engine_t *engine) {
  return ssim_engine_last_error(engine);
}

static struct ssim_inputs bench_inputs(int dtype, int padding, int memory, size_t batch,
                                       size_t channels, size_t height, size_t width,
                                       const void *img1, const void *img2) {
  struct ssim_inputs in;
  in.shape.batch = batch;
  in.shape.channels = channels;
  in.shape.height = height;
  in.shape.width = width;
  in.dtype = (ssim_dtype)dtype;
  in.padding = (ssim_padding)padding;
  in.memory = (ssim_memory)memory;
  in.img1 = img1;
  in.img2 = img2;
  return in;
}

static struct ssim_outputs bench_outputs(double *scores, double *channel_scores, float *map,
                                         float *block_means, float *grad_img1, float *grad_img2) {
  struct ssim_outputs out;
  out.scores = scores;
  out.channel_scores = channel_scores;
  out.map = map;
  out.block_means = block_means;
  out.grad_img1 = grad_img1;
  out.grad_img2 = grad_img2;
  return out;
}

int ssim_bench_compute(ssim_engine_t *engine, int dtype, int padding, int memory, size_t batch,
                       size_t channels, size_t height, size_t width, const void *img1,
                       const void *img2, double *scores, double *channel_scores, float *map,
                       float *block_means, float *grad_img1, float *grad_img2) {
  const struct ssim_inputs in =
      bench_inputs(dtype, padding, memory, batch, channels, height, width, img1, img2);
  const struct ssim_outputs out =
      bench_outputs(scores, channel_scores, map, block_means, grad_img1, grad_img2);
  return ssim_compute(engine, &in, &out);
}

/* ssim_compute_async: every pointer is device memory, the work is queued on `stream`. */
int ssim_bench_compute_async(ssim_engine_t *engine, int dtype, int padding, size_t batch,
                             size_t channels, size_t height, size_t width, const void *img1,
                             const void *img2, double *scores, double *channel_scores, float *map,
                             float *block_means, float *grad_img1, float *grad_img2, void *stream) {
  const struct ssim_inputs in =
      bench_inputs(dtype, padding, SSIM_MEMORY_DEVICE, batch, channels, height, width, img1, img2);
  const struct ssim_outputs out =
      bench_outputs(scores, channel_scores, map, block_means, grad_img1, grad_img2);
  return ssim_compute_async(engine, &in, &out, stream);
}

int ssim_bench_backward(ssim_engine_t *engine, int dtype, int padding, int memory, size_t batch,
                        size_t channels, size_t height, size_t width, const void *img1,
                        const void *img2, const float *grad_map, float *grad_img1,
                        float *grad_img2) {
  const struct ssim_inputs in =
      bench_inputs(dtype, padding, memory, batch, channels, height, width, img1, img2);
  return ssim_backward(engine, &in, grad_map, grad_img1, grad_img2);
}
