/*
 * cuda_backend.cu: the CUDA backend's vtable, device state and the host side of a call.
 *
 * One call runs as a pipeline over chunks of planes. With host memory, chunk k's inputs are
 * copied by the calling thread into pinned staging buffers and uploaded on stream k % 2 while
 * the kernels of chunk k - 1 run on the other stream; its outputs come back through pinned
 * buffers that are copied out when the slot is next needed. With device memory the whole batch
 * is one chunk on one stream. Each plane's sum of the map grows on the device over the whole call
 * (in fixed point, engine/cuda/scores.cuh); the last block of an inference launch of the whole
 * call, or else one small kernel at the end, turns the sums into scores (and the blocks' sums into
 * block means).
 *
 * With SSIM_MEMORY_DEVICE, the images, grad_map, map and gradients are device pointers of this
 * backend's device (for example the data_ptr() of CUDA tensors); scores, channel_scores and
 * block_means are host memory. The call synchronises with its own streams only, so work that
 * produced device inputs on other streams must be complete before it. ssim_compute_async runs
 * the same kernels on the caller's stream instead, with every output in device memory, and
 * returns without waiting; each call waits for the engine's previous one on the device (an
 * event), since they share the buffers below, unless both are queued on the same stream.
 *
 * Every buffer grows to the largest call seen and is never shrunk, so steady traffic allocates
 * nothing (and growing one frees the old buffer, which waits for the device to be idle). Every
 * CUDA call is checked; errors become SSIM_ENOMEM or SSIM_EDEVICE with the CUDA message in
 * `detail`. A synchronous call ends with both streams idle, successful or not, so the caller's
 * buffers are never touched after it returns.
 *
 * Non-finite input is found by the kernels, which write the call's id into a device flag that
 * is never cleared: a call learns of NaN or infinity when the flag holds its own id, so no call
 * spends a launch on resetting it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.cuh"

extern "C" {
#include "backend.h"
}

namespace {

constexpr int kSlots = 2;
/* Chunks a host-memory batch is cut into, at most, for the upload of one to hide behind the
 * kernels of another; and the most device memory one slot may take for a chunk. */
constexpr int64_t kMaxChunks = 4;
constexpr size_t kSlotBytesCap = (size_t)512 << 20;

struct buffer {
  void *ptr;
  size_t cap;
  bool pinned;
};

struct slot {
  cudaStream_t stream;
  cudaEvent_t done;
  buffer in1, in2, grad_map, map, deriv, grad1, grad2; /* device */
  buffer stage_in, stage_out;                          /* pinned host */
  /* The chunk whose outputs wait in stage_out: planes [first, first + count). */
  bool pending;
  int64_t first, count;
};

struct cuda_state {
  int device;
  int tile_h, back_tile_h;     /* training forward and backward tile heights for this device */
  ssim_cuda_resident resident; /* persistent grid sizes of the forward kernels */
  /* sm_90 and later: a kernel may be launched before the one it follows has ended, and wait
   * for it on the device (programmatic dependent launch). */
  bool early_launch;
  char name[256];
  slot slots[kSlots];
  cudaEvent_t start;
  cudaEvent_t last;               /* the end of the last asynchronous call's work */
  bool async_pending;             /* that work may still run */
  cudaStream_t async_stream;      /* the stream it was queued on */
  unsigned call_id;               /* the id of the last call (never 0) */
  buffer partials, results, flag; /* device */
  /* Device scratch of the scores (ssim_cuda_finish, ssim_cuda_finalize), zero between calls:
   * the in-kernel finish's counter and the planes' fixed-point sums (scores.cuh). */
  buffer counters, plane_sums;
  /* A call failed, perhaps between adding to the planes' sums and writing the scores that set
   * them back to zero: the next call clears them first. */
  bool sums_dirty;
  buffer results_host; /* pinned: a word of the non-finite flag, then the results */
};

int cuda_fail(char *detail, const char *what, cudaError_t err) {
  snprintf(detail, SSIM__DETAIL_MAX, "%s: %s", what, cudaGetErrorString(err));
  (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
  return err == cudaErrorMemoryAllocation ? SSIM_ENOMEM : SSIM_EDEVICE;
}

#define CUDA_TRY(what, call)                                                                       \
  do {                                                                                             \
    const cudaError_t err_ = (call);                                                               \
    if (err_ != cudaSuccess)                                                                       \
      return cuda_fail(detail, what, err_);                                                        \
  } while (0)

void buffer_release(buffer *b) {
  if (b->ptr != nullptr) {
    if (b->pinned)
      (void)cudaFreeHost(b->ptr);
    else
      (void)cudaFree(b->ptr);
  }
  b->ptr = nullptr;
  b->cap = 0;
}

/* Grows `b` to at least `bytes` (never shrinks). Called only while no work is in flight. */
int buffer_reserve(buffer *b, size_t bytes, bool pinned, char *detail) {
  if (bytes <= b->cap && b->ptr != nullptr)
    return 0;
  buffer_release(b);
  b->pinned = pinned;
  /* Round up so that slightly varying shapes do not reallocate every call. */
  const size_t want =
      bytes < 4096 ? 4096 : (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
  const cudaError_t err = pinned ? cudaMallocHost(&b->ptr, want) : cudaMalloc(&b->ptr, want);
  if (err != cudaSuccess) {
    b->ptr = nullptr;
    return cuda_fail(detail, pinned ? "cudaMallocHost" : "cudaMalloc", err);
  }
  b->cap = want;
  return 0;
}

void cuda_destroy(void *opaque) {
  cuda_state *st = static_cast<cuda_state *>(opaque);
  if (st == nullptr)
    return;
  (void)cudaSetDevice(st->device);
  for (slot &s : st->slots) {
    if (s.stream != nullptr)
      (void)cudaStreamSynchronize(s.stream);
    for (buffer *b : {&s.in1, &s.in2, &s.grad_map, &s.map, &s.deriv, &s.grad1, &s.grad2,
                      &s.stage_in, &s.stage_out})
      buffer_release(b);
    if (s.done != nullptr)
      (void)cudaEventDestroy(s.done);
    if (s.stream != nullptr)
      (void)cudaStreamDestroy(s.stream);
  }
  if (st->start != nullptr)
    (void)cudaEventDestroy(st->start);
  if (st->last != nullptr)
    (void)cudaEventDestroy(st->last);
  for (buffer *b :
       {&st->partials, &st->results, &st->flag, &st->counters, &st->plane_sums, &st->results_host})
    buffer_release(b);
  free(st);
}

int cuda_create(const struct ssim_engine_options *opts, void **out, char *detail) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    snprintf(detail, SSIM__DETAIL_MAX, "cudaGetDeviceCount: %s", cudaGetErrorString(err));
    (void)cudaGetLastError();
    return SSIM_ENOBACKEND;
  }
  if (opts->device >= count) {
    snprintf(detail, SSIM__DETAIL_MAX, "CUDA device %d requested, %d present", opts->device, count);
    return SSIM_ENOBACKEND;
  }
  cudaDeviceProp prop;
  err = cudaSetDevice(opts->device);
  if (err == cudaSuccess)
    err = cudaGetDeviceProperties(&prop, opts->device);
  if (err != cudaSuccess) {
    snprintf(detail, SSIM__DETAIL_MAX, "CUDA device %d: %s", opts->device, cudaGetErrorString(err));
    (void)cudaGetLastError();
    return SSIM_ENOBACKEND;
  }
  cuda_state *st = static_cast<cuda_state *>(calloc(1, sizeof(*st)));
  if (st == nullptr) {
    snprintf(detail, SSIM__DETAIL_MAX, "out of host memory");
    return SSIM_ENOMEM;
  }
  st->device = opts->device;
  snprintf(st->name, sizeof(st->name), "%s", prop.name);
  st->tile_h = ssim_cuda_forward_tile_h((int)prop.sharedMemPerBlockOptin);
  st->back_tile_h = ssim_cuda_backward_tile_h((int)prop.sharedMemPerBlockOptin);

  /* The kernels' attributes are the first thing that needs their code for this device: a build
   * without it is a device we cannot use, and "auto" must fall back to the CPU. */
  err = ssim_cuda_forward_init(st->tile_h, prop.multiProcessorCount,
                               (int)prop.sharedMemPerBlockOptin, &st->resident);
  if (err == cudaSuccess)
    err = ssim_cuda_backward_init(st->back_tile_h);
  if (err != cudaSuccess) {
    snprintf(detail, SSIM__DETAIL_MAX, "%.120s (sm_%d%d): %.100s", prop.name, prop.major,
             prop.minor, cudaGetErrorString(err));
    (void)cudaGetLastError();
    cuda_destroy(st);
    return SSIM_ENOBACKEND;
  }
  st->early_launch = prop.major >= 9 && ssim_cuda_finalize_can_wait();
  int rc = 0;
  for (slot &s : st->slots) {
    if (rc == 0 && (err = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking)) != 0)
      rc = cuda_fail(detail, "cudaStreamCreate", err);
    if (rc == 0 && (err = cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming)) != 0)
      rc = cuda_fail(detail, "cudaEventCreate", err);
  }
  if (rc == 0 && (err = cudaEventCreateWithFlags(&st->start, cudaEventDisableTiming)) != 0)
    rc = cuda_fail(detail, "cudaEventCreate", err);
  if (rc == 0 && (err = cudaEventCreateWithFlags(&st->last, cudaEventDisableTiming)) != 0)
    rc = cuda_fail(detail, "cudaEventCreate", err);
  /* The non-finite flag starts at 0, an id no call has. */
  if (rc == 0)
    rc = buffer_reserve(&st->flag, sizeof(unsigned), false, detail);
  if (rc == 0 && (err = cudaMemset(st->flag.ptr, 0, sizeof(unsigned))) != 0)
    rc = cuda_fail(detail, "cudaMemset", err);
  if (rc != 0) {
    cuda_destroy(st);
    return rc;
  }
  *out = st;
  return 0;
}

const char *cuda_device_name(void *opaque) {
  return static_cast<cuda_state *>(opaque)->name;
}

/* One engine call, forward and/or backward, as the pipeline above. */
struct call {
  const struct ssim_inputs *in;
  /* Forward outputs (compute); all NULL for ssim_backward. */
  const struct ssim_outputs *out;
  /* Backward: grad_map (NULL for compute, which uses the constant of the mean score). */
  const float *grad_map;
  float *grad1, *grad2;
  /* ssim_compute_async: the caller's stream, every output in device memory, no wait. */
  bool async;
  cudaStream_t stream;
};

struct sizes {
  int64_t planes, img_px, map_px, map_h, map_w, partials_per_plane, blocks;
  size_t esize;
};

/* Copies the outputs of the chunk waiting in slot `s` from pinned memory to the caller. */
void slot_drain(const call &c, const sizes &z, slot &s, bool with_map) {
  if (!s.pending)
    return;
  const char *src = static_cast<const char *>(s.stage_out.ptr);
  const size_t map_bytes = (size_t)(s.count * z.map_px) * sizeof(float);
  const size_t img_bytes = (size_t)(s.count * z.img_px) * sizeof(float);
  if (with_map) {
    memcpy(c.out->map + s.first * z.map_px, src, map_bytes);
    src += map_bytes;
  }
  if (c.grad1 != nullptr) {
    memcpy(c.grad1 + s.first * z.img_px, src, img_bytes);
    src += img_bytes;
  }
  if (c.grad2 != nullptr)
    memcpy(c.grad2 + s.first * z.img_px, src, img_bytes);
  s.pending = false;
}

int run_call(cuda_state *st, const call &c, char *detail) {
  const struct ssim_inputs *in = c.in;
  const bool host = in->memory == SSIM_MEMORY_HOST;
  const bool forward_outputs = c.out != nullptr;
  const bool want_map = forward_outputs && c.out->map != nullptr;
  const bool want_blocks = forward_outputs && c.out->block_means != nullptr;
  const int ngrad = (c.grad1 != nullptr) + (c.grad2 != nullptr);

  ssim_cuda_geometry geo;
  size_t map_h = 0, map_w = 0;
  (void)ssim_map_size(in->shape.height, in->shape.width, in->padding, &map_h, &map_w);
  geo.height = (int64_t)in->shape.height;
  geo.width = (int64_t)in->shape.width;
  geo.map_h = (int64_t)map_h;
  geo.map_w = (int64_t)map_w;
  geo.offset = in->padding == SSIM_PADDING_VALID ? SSIM_HALO : 0;
  geo.dtype = in->dtype;
  geo.channels = (int)in->shape.channels;
  geo.center = geo.height >= SSIM_WINDOW && geo.width >= SSIM_WINDOW ? 0.5f : 0.0f;
  if ((size_t)geo.channels != in->shape.channels) {
    snprintf(detail, SSIM__DETAIL_MAX, "more than %d channels", INT32_MAX);
    return SSIM_EUNSUPPORTED;
  }

  sizes z;
  z.planes = (int64_t)(in->shape.batch * in->shape.channels);
  z.img_px = geo.height * geo.width;
  z.map_h = geo.map_h;
  z.map_w = geo.map_w;
  z.map_px = geo.map_h * geo.map_w;
  z.esize = ssim_cuda_dtype_size(in->dtype);
  ssim_cuda_partials layout;
  ssim_cuda_forward_partials(&geo, st->tile_h, ngrad > 0, &layout);
  z.partials_per_plane = layout.piece_rows * layout.pitch;
  z.blocks = ((z.map_h + SSIM_BLOCK - 1) / SSIM_BLOCK) * ((z.map_w + SSIM_BLOCK - 1) / SSIM_BLOCK);
  const int64_t batch = (int64_t)in->shape.batch;
  geo.sum_shift = ssim_cuda_sum_shift(z.map_px * geo.channels);
  geo.sum_scale = ldexpf(1.0f, geo.sum_shift);
  geo.plane_unit = ldexp(1.0, -geo.sum_shift) / (double)z.map_px;
  geo.pair_unit = ldexp(1.0, -geo.sum_shift) / ((double)z.map_px * geo.channels);

  const int deriv_count = ngrad == 2 ? 4 : ngrad == 1 ? 3 : 0;
  const ssim_cuda_deriv_mode deriv_mode = ngrad == 2           ? SSIM_CUDA_DERIV_BOTH
                                          : c.grad1 != nullptr ? SSIM_CUDA_DERIV_IMG1
                                          : c.grad2 != nullptr ? SSIM_CUDA_DERIV_IMG2
                                                               : SSIM_CUDA_DERIV_NONE;

  /* Device bytes one plane needs in a slot. */
  const size_t plane_in = 2 * (size_t)z.img_px * z.esize + (c.grad_map ? 4 * (size_t)z.map_px : 0);
  const size_t plane_out = (want_map ? 4 * (size_t)z.map_px : 0) + 4 * (size_t)z.img_px * ngrad;
  const size_t plane_deriv = 4 * (size_t)z.map_px * deriv_count;
  int64_t chunk = z.planes;
  if (host) {
    const int64_t chunks = z.planes < kMaxChunks ? z.planes : kMaxChunks;
    chunk = (z.planes + chunks - 1) / chunks;
    const int64_t cap = (int64_t)(kSlotBytesCap / (plane_in + plane_out + plane_deriv));
    if (chunk > cap)
      chunk = cap > 0 ? cap : 1;
  }
  const int used_slots = chunk < z.planes ? kSlots : 1;
  /* An inference call in one launch writes the scores in that launch; otherwise (training,
   * chunks, block means, many pairs) the finalize kernel runs after the forward launches. */
#ifndef SSIM_CUDA_NO_FINISH /* a build-time switch for comparing the two ways */
  const bool finish_in_kernel = forward_outputs && deriv_count == 0 && !want_blocks &&
                                chunk >= z.planes && batch <= SSIM_CUDA_FINISH_MAX_PAIRS &&
                                z.planes <= SSIM_CUDA_FINISH_MAX_PLANES;
#else
  const bool finish_in_kernel = false;
#endif

  /* Reserve everything first: growing a buffer frees the old one, which waits for the device. The
   * results: a word for the non-finite flag, then scores, channel scores and block means. */
  int rc = 0;
  const size_t partial_bytes = (size_t)(z.planes * z.partials_per_plane) * sizeof(float);
  const size_t score_bytes = (size_t)batch * (1 + geo.channels) * sizeof(double);
  const size_t result_bytes =
      sizeof(double) + score_bytes + (size_t)(batch * z.blocks) * sizeof(float);
  bool clear_scratch = false; /* the counter and the planes' sums must be set to zero first */
  const int64_t sum_stride = ssim_cuda_sum_stride(z.planes);
  const int sum_slots = ssim_cuda_sum_slots(z.planes);
  if (forward_outputs) {
    /* Grown buffers are new ones (they never shrink), whose contents are undefined. */
    const size_t counters_cap = st->counters.cap, sums_cap = st->plane_sums.cap;
    if ((want_blocks && (rc = buffer_reserve(&st->partials, partial_bytes, false, detail)) != 0) ||
        (rc = buffer_reserve(&st->results, result_bytes, false, detail)) != 0 ||
        (rc = buffer_reserve(&st->counters, sizeof(unsigned long long), false, detail)) != 0 ||
        (rc = buffer_reserve(&st->plane_sums,
                             SSIM_CUDA_SUM_SLOTS * (size_t)sum_stride * sizeof(unsigned long long),
                             false, detail)) != 0)
      return rc;
    clear_scratch =
        st->sums_dirty || st->counters.cap != counters_cap || st->plane_sums.cap != sums_cap;
  }
  if ((rc = buffer_reserve(&st->results_host, result_bytes, true, detail)) != 0)
    return rc;
  for (int k = 0; k < used_slots; k++) {
    slot &s = st->slots[k];
    const size_t n = (size_t)chunk;
    if (deriv_count > 0 && (rc = buffer_reserve(&s.deriv, n * plane_deriv, false, detail)) != 0)
      return rc;
    if (!host)
      continue;
    const size_t in_bytes = n * (size_t)z.img_px * z.esize;
    if ((rc = buffer_reserve(&s.in1, in_bytes, false, detail)) != 0 ||
        (rc = buffer_reserve(&s.in2, in_bytes, false, detail)) != 0 ||
        (rc = buffer_reserve(&s.stage_in, n * plane_in, true, detail)) != 0)
      return rc;
    if (c.grad_map != nullptr &&
        (rc = buffer_reserve(&s.grad_map, n * 4 * (size_t)z.map_px, false, detail)) != 0)
      return rc;
    if (want_map && (rc = buffer_reserve(&s.map, n * 4 * (size_t)z.map_px, false, detail)) != 0)
      return rc;
    if (c.grad1 != nullptr &&
        (rc = buffer_reserve(&s.grad1, n * 4 * (size_t)z.img_px, false, detail)) != 0)
      return rc;
    if (c.grad2 != nullptr &&
        (rc = buffer_reserve(&s.grad2, n * 4 * (size_t)z.img_px, false, detail)) != 0)
      return rc;
    if (plane_out > 0 && (rc = buffer_reserve(&s.stage_out, n * plane_out, true, detail)) != 0)
      return rc;
  }

  unsigned *flag = static_cast<unsigned *>(st->flag.ptr);
  if (++st->call_id == 0) {
    /* Ids wrapped: clear the flag of the id used 2^32 calls ago. */
    CUDA_TRY("cudaMemset", cudaMemset(flag, 0, sizeof(unsigned)));
    st->call_id = 1;
  }
  cudaStream_t main_stream = c.async ? c.stream : st->slots[0].stream;
  /* An asynchronous call's kernels may still run: this one reuses their buffers, so it waits
   * for them, unless it is queued behind them on the same stream anyway. (A synchronous call
   * ends with its work done.) */
  const bool same_stream = c.async && main_stream == st->async_stream &&
                           main_stream != cudaStreamPerThread; /* one handle, a stream a thread */
  if (st->async_pending && !same_stream)
    CUDA_TRY("cudaStreamWaitEvent", cudaStreamWaitEvent(main_stream, st->last, 0));
  st->async_pending = false;
  if (clear_scratch) {
    /* On the stream of the call's work, after the work of earlier calls (a failing call waits
     * for that stream before it returns). */
    CUDA_TRY("cudaMemsetAsync",
             cudaMemsetAsync(st->counters.ptr, 0, st->counters.cap, main_stream));
    CUDA_TRY("cudaMemsetAsync",
             cudaMemsetAsync(st->plane_sums.ptr, 0, st->plane_sums.cap, main_stream));
    st->sums_dirty = false;
  }
  if (used_slots > 1) {
    CUDA_TRY("cudaEventRecord", cudaEventRecord(st->start, main_stream));
    CUDA_TRY("cudaStreamWaitEvent", cudaStreamWaitEvent(st->slots[1].stream, st->start, 0));
  }

  /* The device results: a word for the flag's copy, then scores, channel scores, block means. */
  unsigned *d_flag_copy = static_cast<unsigned *>(st->results.ptr);
  double *d_scores = static_cast<double *>(st->results.ptr) + 1;
  double *d_channels = d_scores + batch;
  float *d_blocks = reinterpret_cast<float *>(d_channels + batch * geo.channels);
  /* An asynchronous call's scores go straight to the caller's device buffers. */
  double *scores_out = c.async ? c.out->scores : d_scores;
  double *channels_out =
      c.async && c.out->channel_scores != nullptr ? c.out->channel_scores : d_channels;
  unsigned long long *counters = static_cast<unsigned long long *>(st->counters.ptr);
  unsigned long long *plane_sums = static_cast<unsigned long long *>(st->plane_sums.ptr);

  const size_t in_plane_bytes = (size_t)z.img_px * z.esize;
  for (int64_t first = 0, k = 0; first < z.planes; first += chunk, k++) {
    slot &s = st->slots[k % used_slots];
    cudaStream_t stream = c.async ? c.stream : s.stream;
    const int64_t n = z.planes - first < chunk ? z.planes - first : chunk;
    const void *d_img1, *d_img2;
    const float *d_grad_map = c.grad_map;
    float *d_map = want_map ? c.out->map : nullptr;
    float *d_grad1 = c.grad1, *d_grad2 = c.grad2;
    if (host) {
      if (s.pending) {
        CUDA_TRY("cudaEventSynchronize", cudaEventSynchronize(s.done));
        slot_drain(c, z, s, want_map);
      }
      /* Stage and upload this chunk; the other slot's kernels run meanwhile. */
      char *stage = static_cast<char *>(s.stage_in.ptr);
      const size_t bytes = (size_t)n * in_plane_bytes;
      memcpy(stage, static_cast<const char *>(in->img1) + first * in_plane_bytes, bytes);
      memcpy(stage + bytes, static_cast<const char *>(in->img2) + first * in_plane_bytes, bytes);
      CUDA_TRY("cudaMemcpyAsync",
               cudaMemcpyAsync(s.in1.ptr, stage, bytes, cudaMemcpyHostToDevice, s.stream));
      CUDA_TRY("cudaMemcpyAsync",
               cudaMemcpyAsync(s.in2.ptr, stage + bytes, bytes, cudaMemcpyHostToDevice, s.stream));
      if (c.grad_map != nullptr) {
        const size_t gbytes = (size_t)(n * z.map_px) * sizeof(float);
        memcpy(stage + 2 * bytes, c.grad_map + first * z.map_px, gbytes);
        CUDA_TRY("cudaMemcpyAsync", cudaMemcpyAsync(s.grad_map.ptr, stage + 2 * bytes, gbytes,
                                                    cudaMemcpyHostToDevice, s.stream));
        d_grad_map = static_cast<const float *>(s.grad_map.ptr);
      }
      d_img1 = s.in1.ptr;
      d_img2 = s.in2.ptr;
      d_map = want_map ? static_cast<float *>(s.map.ptr) : nullptr;
      d_grad1 = c.grad1 != nullptr ? static_cast<float *>(s.grad1.ptr) : nullptr;
      d_grad2 = c.grad2 != nullptr ? static_cast<float *>(s.grad2.ptr) : nullptr;
    } else {
      d_img1 = static_cast<const char *>(in->img1) + first * in_plane_bytes;
      d_img2 = static_cast<const char *>(in->img2) + first * in_plane_bytes;
      if (d_grad_map != nullptr)
        d_grad_map += first * z.map_px;
      if (d_map != nullptr)
        d_map += first * z.map_px;
      if (d_grad1 != nullptr)
        d_grad1 += first * z.img_px;
      if (d_grad2 != nullptr)
        d_grad2 += first * z.img_px;
    }

    ssim_cuda_forward_args fa;
    fa.img1 = d_img1;
    fa.img2 = d_img2;
    fa.planes = n;
    fa.map = d_map;
    fa.partials = want_blocks
                      ? static_cast<float *>(st->partials.ptr) + first * z.partials_per_plane
                      : nullptr;
    fa.plane_sums = forward_outputs ? plane_sums + first : nullptr;
    fa.sum_stride = sum_stride;
    fa.sum_slots = sum_slots;
    fa.finish.scores = finish_in_kernel ? scores_out : nullptr;
    fa.finish.channel_scores = channels_out;
    fa.finish.flag_copy = c.async ? nullptr : d_flag_copy;
    fa.finish.counters = counters;
    fa.deriv = deriv_count > 0 ? static_cast<float *>(s.deriv.ptr) : nullptr;
    fa.deriv_stride = n * z.map_px;
    fa.deriv_mode = deriv_mode;
    fa.grad_map = d_grad_map;
    fa.grad_scale = (float)(1.0 / ((double)geo.channels * (double)z.map_px));
    fa.nonfinite = flag;
    fa.call = st->call_id;
    CUDA_TRY("forward kernel", ssim_cuda_forward(&geo, st->tile_h, &st->resident, &fa, stream));

    if (deriv_count > 0) {
      ssim_cuda_backward_args ba;
      const bool only2 = deriv_mode == SSIM_CUDA_DERIV_IMG2;
      ba.img_a = only2 ? d_img2 : d_img1;
      ba.img_b = only2 ? d_img1 : d_img2;
      ba.planes = n;
      ba.deriv = fa.deriv;
      ba.deriv_stride = fa.deriv_stride;
      ba.deriv_count = deriv_count;
      ba.grad_a = only2 ? d_grad2 : d_grad1;
      ba.grad_b = deriv_count == 4 ? d_grad2 : nullptr;
      CUDA_TRY("backward kernel", ssim_cuda_backward(&geo, st->back_tile_h, &ba, stream));
    }

    if (host && plane_out > 0) {
      char *dst = static_cast<char *>(s.stage_out.ptr);
      const size_t map_bytes = (size_t)(n * z.map_px) * sizeof(float);
      const size_t img_bytes = (size_t)(n * z.img_px) * sizeof(float);
      if (want_map) {
        CUDA_TRY("cudaMemcpyAsync",
                 cudaMemcpyAsync(dst, d_map, map_bytes, cudaMemcpyDeviceToHost, s.stream));
        dst += map_bytes;
      }
      if (d_grad1 != nullptr) {
        CUDA_TRY("cudaMemcpyAsync",
                 cudaMemcpyAsync(dst, d_grad1, img_bytes, cudaMemcpyDeviceToHost, s.stream));
        dst += img_bytes;
      }
      if (d_grad2 != nullptr)
        CUDA_TRY("cudaMemcpyAsync",
                 cudaMemcpyAsync(dst, d_grad2, img_bytes, cudaMemcpyDeviceToHost, s.stream));
      s.pending = true;
      s.first = first;
      s.count = n;
    }
    if (host)
      CUDA_TRY("cudaEventRecord", cudaEventRecord(s.done, s.stream));
  }

  /* Join the streams, reduce, and bring the scores and the flag back. */
  if (used_slots > 1)
    CUDA_TRY("cudaStreamWaitEvent", cudaStreamWaitEvent(main_stream, st->slots[1].done, 0));
  char *results_host = static_cast<char *>(st->results_host.ptr);
  /* An inference call on device memory queues nothing between its one inference launch and the
   * finalize kernel, which may then be launched early (see ssim_cuda_finalize). */
  const bool finalize_early = st->early_launch && !host && deriv_count == 0;
  if (forward_outputs && !finish_in_kernel)
    CUDA_TRY("finalize kernel",
             ssim_cuda_finalize(&geo, &layout, batch, static_cast<float *>(st->partials.ptr),
                                plane_sums, sum_stride, sum_slots, scores_out, channels_out,
                                c.async       ? c.out->block_means
                                : want_blocks ? d_blocks
                                              : nullptr,
                                flag, st->call_id, c.async ? nullptr : d_flag_copy, main_stream,
                                finalize_early));
  if (c.async) {
    /* NaN scores tell of non-finite input. */
    CUDA_TRY("cudaEventRecord", cudaEventRecord(st->last, main_stream));
    st->async_pending = true;
    st->async_stream = main_stream;
    return 0;
  }
  if (forward_outputs) {
    const size_t bytes = want_blocks ? result_bytes : sizeof(double) + score_bytes;
    CUDA_TRY("cudaMemcpyAsync", cudaMemcpyAsync(results_host, st->results.ptr, bytes,
                                                cudaMemcpyDeviceToHost, main_stream));
  } else {
    CUDA_TRY("cudaMemcpyAsync", cudaMemcpyAsync(results_host, flag, sizeof(unsigned),
                                                cudaMemcpyDeviceToHost, main_stream));
  }
  CUDA_TRY("cudaStreamSynchronize", cudaStreamSynchronize(main_stream));
  for (int k = 0; k < used_slots && host; k++) {
    CUDA_TRY("cudaEventSynchronize", cudaEventSynchronize(st->slots[k].done));
    slot_drain(c, z, st->slots[k], want_map);
  }
  /* The flag's value, copied by finalize or directly. */
  if (*reinterpret_cast<const unsigned *>(results_host) == st->call_id) {
    snprintf(detail, SSIM__DETAIL_MAX, "%s", ssim_strerror(SSIM_ENONFINITE));
    return SSIM_ENONFINITE;
  }
  if (forward_outputs) {
    const double *scores = reinterpret_cast<const double *>(results_host) + 1;
    memcpy(c.out->scores, scores, (size_t)batch * sizeof(double));
    if (c.out->channel_scores != nullptr)
      memcpy(c.out->channel_scores, scores + batch, (size_t)batch * geo.channels * sizeof(double));
    if (want_blocks)
      memcpy(c.out->block_means, scores + batch * (1 + geo.channels),
             (size_t)(batch * z.blocks) * sizeof(float));
  }
  return 0;
}

/* Runs a call and, whatever happened, leaves both streams idle and no chunk pending. */
int run_call_safely(cuda_state *st, const call &c, char *detail) {
  cudaError_t err = cudaSetDevice(st->device);
  if (err != cudaSuccess)
    return cuda_fail(detail, "cudaSetDevice", err);
  const int rc = run_call(st, c, detail);
  if (rc != 0) {
    st->sums_dirty = true;
    if (c.async)
      (void)cudaStreamSynchronize(c.stream);
    for (slot &s : st->slots) {
      (void)cudaStreamSynchronize(s.stream);
      s.pending = false;
    }
    (void)cudaGetLastError();
  }
  return rc;
}

/* ssim_compute, waiting for its results (async false) or queued on `stream`. */
int compute_call(void *opaque, const struct ssim_inputs *in, const struct ssim_outputs *out,
                 bool async, cudaStream_t stream, char *detail) {
  call c;
  c.in = in;
  c.out = out;
  c.grad_map = nullptr;
  c.grad1 = out->grad_img1;
  c.grad2 = out->grad_img2;
  c.async = async;
  c.stream = stream;
  return run_call_safely(static_cast<cuda_state *>(opaque), c, detail);
}

int cuda_compute(void *opaque, const struct ssim_inputs *in, const struct ssim_outputs *out,
                 char *detail) {
  return compute_call(opaque, in, out, false, nullptr, detail);
}

int cuda_compute_async(void *opaque, const struct ssim_inputs *in, const struct ssim_outputs *out,
                       void *stream, char *detail) {
  return compute_call(opaque, in, out, true, static_cast<cudaStream_t>(stream), detail);
}

int cuda_backward(void *opaque, const struct ssim_inputs *in, const float *grad_map,
                  float *grad_img1, float *grad_img2, char *detail) {
  call c;
  c.in = in;
  c.out = nullptr;
  c.grad_map = grad_map;
  c.grad1 = grad_img1;
  c.grad2 = grad_img2;
  c.async = false;
  c.stream = nullptr;
  return run_call_safely(static_cast<cuda_state *>(opaque), c, detail);
}

} // namespace

/* Positional, in the order of struct ssim__backend: C++17 has no designated initializers. */
extern "C" const struct ssim__backend ssim__backend_cuda = {
    "cuda",             /* name */
    cuda_create,        /* create */
    cuda_destroy,       /* destroy */
    cuda_device_name,   /* device_name */
    cuda_compute,       /* compute */
    cuda_backward,      /* backward */
    cuda_compute_async, /* compute_async */
};
