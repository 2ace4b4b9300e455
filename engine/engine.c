/*
 * engine.c: backend registry and selection, argument checks, error reporting.
 *
 * Every request is validated here once, so that backends only see well-formed requests.
 */
#include "backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENGINE_ERROR_MAX (SSIM__DETAIL_MAX + 64)

/* Built backends, GPUs first, the CPU last: "auto" takes the first one whose create succeeds. */
static const struct ssim__backend *const backend_registry[] = {
#ifdef SSIM_HAVE_CUDA
    &ssim__backend_cuda,
#endif
#ifdef SSIM_HAVE_SYCL
    &ssim__backend_sycl,
#endif
    &ssim__backend_cpu,
};

#define BACKEND_COUNT (sizeof(backend_registry) / sizeof(backend_registry[0]))

struct ssim_engine {
  const struct ssim__backend *backend;
  void *state;
  /* The CPU backend, created on first need, for requests the primary backend declines. */
  void *cpu_fallback_state;
  struct ssim_engine_options options;
  char last_error[ENGINE_ERROR_MAX];
};

const char *ssim_err_name(int err) {
  switch (err) {
#define SSIM__ERRNO_NAME(name, code, msg)                                                         \
  case SSIM_##name:                                                                               \
    return "SSIM_" #name;
    SSIM_ERRNO_MAP(SSIM__ERRNO_NAME)
#undef SSIM__ERRNO_NAME
  case 0:
    return "SSIM_OK";
  default:
    return "SSIM_UNKNOWN";
  }
}

const char *ssim_strerror(int err) {
  switch (err) {
#define SSIM__ERRNO_MSG(name, code, msg)                                                          \
  case SSIM_##name:                                                                               \
    return msg;
    SSIM_ERRNO_MAP(SSIM__ERRNO_MSG)
#undef SSIM__ERRNO_MSG
  case 0:
    return "success";
  default:
    return "unknown error";
  }
}

size_t ssim_backend_count(void) { return BACKEND_COUNT; }

const char *ssim_backend_name_at(size_t index) {
  return index < BACKEND_COUNT ? backend_registry[index]->name : NULL;
}

void ssim_engine_options_init(struct ssim_engine_options *opts) {
  if (opts == NULL)
    return;
  opts->backend = "auto";
  opts->threads = 0;
  opts->device = 0;
}

static void copy_detail(char *dst, size_t dst_size, const char *src) {
  if (dst != NULL && dst_size > 0)
    snprintf(dst, dst_size, "%s", src);
}

int ssim_engine_create(const struct ssim_engine_options *opts, ssim_engine_t **out, char *detail,
                       size_t detail_size) {
  char why[SSIM__DETAIL_MAX] = "";
  if (opts == NULL || out == NULL) {
    copy_detail(detail, detail_size, ssim_strerror(SSIM_ENULL));
    return SSIM_ENULL;
  }
  *out = NULL;
  const char *wanted = opts->backend != NULL ? opts->backend : "auto";
  int is_auto = strcmp(wanted, "auto") == 0;
  if (opts->threads < 0 || opts->device < 0 ||
      (!is_auto && strcmp(wanted, "cpu") != 0 && strcmp(wanted, "cuda") != 0 &&
       strcmp(wanted, "sycl") != 0)) {
    snprintf(why, sizeof(why), "unknown backend \"%s\" or negative threads/device", wanted);
    copy_detail(detail, detail_size, why);
    return SSIM_EINVAL;
  }

  struct ssim_engine *engine = calloc(1, sizeof(*engine));
  if (engine == NULL) {
    copy_detail(detail, detail_size, ssim_strerror(SSIM_ENOMEM));
    return SSIM_ENOMEM;
  }
  engine->options = *opts;
  engine->options.backend = NULL; /* the caller's string is not ours to keep */

  int err = SSIM_ENOBACKEND;
  snprintf(why, sizeof(why), "backend \"%s\" is not built into this binary", wanted);
  for (size_t i = 0; i < BACKEND_COUNT; i++) {
    const struct ssim__backend *candidate = backend_registry[i];
    if (!is_auto && strcmp(candidate->name, wanted) != 0)
      continue;
    why[0] = '\0';
    err = candidate->create(&engine->options, &engine->state, why);
    if (err == 0) {
      engine->backend = candidate;
      break;
    }
    /* With "auto", a GPU backend without a usable device gives way to the next one. */
    if (!is_auto)
      break;
  }
  if (err != 0) {
    copy_detail(detail, detail_size, why[0] != '\0' ? why : ssim_strerror(err));
    free(engine);
    return err;
  }
  *out = engine;
  return 0;
}

void ssim_engine_destroy(ssim_engine_t *engine) {
  if (engine == NULL)
    return;
  engine->backend->destroy(engine->state);
  if (engine->cpu_fallback_state != NULL)
    ssim__backend_cpu.destroy(engine->cpu_fallback_state);
  free(engine);
}

const char *ssim_engine_backend_name(const ssim_engine_t *engine) {
  return engine != NULL ? engine->backend->name : "none";
}

const char *ssim_engine_device_name(const ssim_engine_t *engine) {
  if (engine == NULL)
    return "none";
  if (engine->backend->device_name == NULL)
    return engine->backend->name;
  return engine->backend->device_name(engine->state);
}

const char *ssim_engine_last_error(const ssim_engine_t *engine) {
  return engine != NULL ? engine->last_error : ssim_strerror(SSIM_ENULL);
}

int ssim_map_size(size_t height, size_t width, ssim_padding padding, size_t *map_height,
                  size_t *map_width) {
  if (map_height == NULL || map_width == NULL)
    return SSIM_ENULL;
  if (height == 0 || width == 0)
    return SSIM_ESHAPE;
  if (padding == SSIM_PADDING_SAME) {
    *map_height = height;
    *map_width = width;
    return 0;
  }
  if (padding != SSIM_PADDING_VALID)
    return SSIM_EINVAL;
  if (height < SSIM_WINDOW || width < SSIM_WINDOW)
    return SSIM_ETOOSMALL;
  *map_height = height - 2 * SSIM_HALO;
  *map_width = width - 2 * SSIM_HALO;
  return 0;
}

/* Records the outcome of a call in engine->last_error and passes the code through. */
static int engine_report(struct ssim_engine *engine, int err, const char *detail) {
  if (err == 0)
    engine->last_error[0] = '\0';
  else if (detail != NULL && detail[0] != '\0')
    snprintf(engine->last_error, sizeof(engine->last_error), "%s: %s", ssim_err_name(err), detail);
  else
    snprintf(engine->last_error, sizeof(engine->last_error), "%s: %s", ssim_err_name(err),
             ssim_strerror(err));
  return err;
}

/* a * b, or SSIM_EOVERFLOW through *err when it does not fit in size_t. */
static size_t checked_mul(size_t a, size_t b, int *err) {
  if (a != 0 && b > SIZE_MAX / a) {
    *err = SSIM_EOVERFLOW;
    return 0;
  }
  return a * b;
}

/* Checks what every request shares. The largest buffer is batch*channels*height*width floats
 * (gradients; float input), so that product times sizeof(float) must fit in size_t. */
static int inputs_check(const struct ssim_inputs *in) {
  if (in == NULL || in->img1 == NULL || in->img2 == NULL)
    return SSIM_ENULL;
  const struct ssim_shape *s = &in->shape;
  if (s->batch == 0 || s->channels == 0 || s->height == 0 || s->width == 0)
    return SSIM_ESHAPE;
  if ((unsigned)in->dtype > SSIM_DTYPE_F32 || (unsigned)in->padding > SSIM_PADDING_VALID ||
      (unsigned)in->memory > SSIM_MEMORY_DEVICE)
    return SSIM_EINVAL;
  int err = 0;
  size_t elements = checked_mul(s->batch, s->channels, &err);
  elements = checked_mul(elements, s->height, &err);
  elements = checked_mul(elements, s->width, &err);
  (void)checked_mul(elements, sizeof(float), &err);
  if (err != 0)
    return err;
  size_t map_h, map_w;
  return ssim_map_size(s->height, s->width, in->padding, &map_h, &map_w);
}

/* Calls `op` on the primary backend; if it declines a host-memory request, on the CPU. */
#define ENGINE_DISPATCH(engine, in, detail, CALL)                                                 \
  do {                                                                                            \
    const struct ssim__backend *backend_ = (engine)->backend;                                     \
    void *state_ = (engine)->state;                                                               \
    err = backend_->CALL;                                                                         \
    if (err == SSIM_EUNSUPPORTED && backend_ != &ssim__backend_cpu &&                             \
        (in)->memory == SSIM_MEMORY_HOST) {                                                       \
      err = engine_cpu_fallback(engine, &state_, detail);                                         \
      backend_ = &ssim__backend_cpu;                                                              \
      if (err == 0)                                                                               \
        err = backend_->CALL;                                                                     \
    }                                                                                             \
  } while (0)

static int engine_cpu_fallback(struct ssim_engine *engine, void **state, char *detail) {
  if (engine->cpu_fallback_state == NULL) {
    int err = ssim__backend_cpu.create(&engine->options, &engine->cpu_fallback_state, detail);
    if (err != 0)
      return err;
  }
  *state = engine->cpu_fallback_state;
  return 0;
}

/* Checks a request of ssim_compute or ssim_compute_async. */
static int compute_check(const struct ssim_inputs *in, const struct ssim_outputs *out) {
  int err = inputs_check(in);
  if (err == 0 && (out == NULL || out->scores == NULL))
    err = SSIM_ENULL;
  return err;
}

int ssim_compute(ssim_engine_t *engine, const struct ssim_inputs *in,
                 const struct ssim_outputs *out) {
  if (engine == NULL)
    return SSIM_ENULL;
  int err = compute_check(in, out);
  if (err != 0)
    return engine_report(engine, err, NULL);
  char detail[SSIM__DETAIL_MAX] = "";
  ENGINE_DISPATCH(engine, in, detail, compute(state_, in, out, detail));
  return engine_report(engine, err, detail);
}

int ssim_compute_async(ssim_engine_t *engine, const struct ssim_inputs *in,
                       const struct ssim_outputs *out, void *stream) {
  if (engine == NULL)
    return SSIM_ENULL;
  int err = compute_check(in, out);
  if (err == 0 && in->memory != SSIM_MEMORY_DEVICE)
    err = SSIM_EINVAL;
  if (err != 0)
    return engine_report(engine, err, NULL);
  char detail[SSIM__DETAIL_MAX] = "";
  if (engine->backend->compute_async == NULL) {
    snprintf(detail, sizeof(detail), "the %s backend has no device memory", engine->backend->name);
    return engine_report(engine, SSIM_EUNSUPPORTED, detail);
  }
  err = engine->backend->compute_async(engine->state, in, out, stream, detail);
  return engine_report(engine, err, detail);
}

int ssim_backward(ssim_engine_t *engine, const struct ssim_inputs *in, const float *grad_map,
                  float *grad_img1, float *grad_img2) {
  if (engine == NULL)
    return SSIM_ENULL;
  int err = inputs_check(in);
  if (err == 0 && (grad_map == NULL || (grad_img1 == NULL && grad_img2 == NULL)))
    err = SSIM_ENULL;
  if (err != 0)
    return engine_report(engine, err, NULL);
  char detail[SSIM__DETAIL_MAX] = "";
  ENGINE_DISPATCH(engine, in, detail,
                  backward(state_, in, grad_map, grad_img1, grad_img2, detail));
  return engine_report(engine, err, detail);
}
