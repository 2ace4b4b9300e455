/*
 * error.c: the error table of error.h and the mappings into it.
 */
#include "error.h"

#include "decode.h"
#include "response.h"
#include "ssim.h"

#include <jansson.h>
#include <string.h>

static const struct {
  unsigned status;
  const char *code;
  const char *message;
} error_table[SSIMD_ERROR_COUNT] = {
#define SSIMD__ERROR_ROW(name, status, code, message) {status, code, message},
    SSIMD_ERROR_MAP(SSIMD__ERROR_ROW)
#undef SSIMD__ERROR_ROW
};

unsigned ssimd_error_status(ssimd_error error) {
  return (unsigned)error < SSIMD_ERROR_COUNT ? error_table[error].status : 500;
}

const char *ssimd_error_code(ssimd_error error) {
  return (unsigned)error < SSIMD_ERROR_COUNT ? error_table[error].code : "internal_error";
}

const char *ssimd_error_message(ssimd_error error) {
  return (unsigned)error < SSIMD_ERROR_COUNT ? error_table[error].message : "internal error";
}

ssimd_error ssimd_error_from_decode(int decode_status) {
  switch (decode_status) {
  case SSIMD_DECODE_EFORMAT:
    return SSIMD_ERROR_UNSUPPORTED_FORMAT;
  case SSIMD_DECODE_ETOOBIG:
    return SSIMD_ERROR_IMAGE_TOO_LARGE;
  case SSIMD_DECODE_ECORRUPT:
    return SSIMD_ERROR_CORRUPT_IMAGE;
  case SSIMD_DECODE_EMISMATCH:
    return SSIMD_ERROR_IMAGE_MISMATCH;
  case SSIMD_DECODE_ETOOSMALL:
    return SSIMD_ERROR_IMAGE_TOO_SMALL;
  case SSIMD_DECODE_ENOMEM:
    return SSIMD_ERROR_ENGINE_UNAVAILABLE;
  default:
    return SSIMD_ERROR_INTERNAL;
  }
}

ssimd_error ssimd_error_from_engine(int engine_err) {
  switch (engine_err) {
  case SSIM_ETOOSMALL:
    return SSIMD_ERROR_IMAGE_TOO_SMALL;
  case SSIM_ENONFINITE:
    return SSIMD_ERROR_INVALID_PIXELS;
  case SSIM_ENOMEM:
  case SSIM_EDEVICE:
  case SSIM_ENOBACKEND:
  case SSIM_ETHREAD:
    return SSIMD_ERROR_ENGINE_UNAVAILABLE;
  default:
    /* EINVAL, ESHAPE, EOVERFLOW, ENULL, EUNSUPPORTED: the daemon built a bad request. */
    return SSIMD_ERROR_INTERNAL;
  }
}

char *ssimd_error_body(ssimd_error error, const char *message, const char *field, size_t *len) {
  json_t *body = ssimd_error_encode(ssimd_error_code(error),
                                    message != NULL ? message : ssimd_error_message(error), field);
  if (body == NULL)
    return NULL;
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (text != NULL && len != NULL)
    *len = strlen(text);
  return text;
}
