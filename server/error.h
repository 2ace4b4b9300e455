/*
 * error.h: the daemon's error classes and the one table that maps each to an HTTP status and
 * the `code` of API.md's error body. Engine codes and decode classes are mapped here too, so
 * every status the daemon sends for an error is decided in this file.
 */
#ifndef SSIMD_ERROR_H
#define SSIMD_ERROR_H

#include <stddef.h>

/* X(NAME, status, "code", "default message") */
#define SSIMD_ERROR_MAP(X)                                                                         \
  X(BAD_MULTIPART, 400, "bad_multipart", "the multipart body could not be parsed")                 \
  X(BAD_JSON, 400, "bad_json", "the body is not a JSON object")                                    \
  X(BAD_BASE64, 400, "bad_base64", "the image is not valid base64")                                \
  X(MISSING_PART, 400, "missing_part", "the request lacks an image")                               \
  X(BAD_OPTION, 400, "bad_option", "an option has a value it does not take")                       \
  X(UNKNOWN_OPTION, 400, "unknown_option", "the request names an option that does not exist")      \
  X(UNAUTHORIZED, 401, "unauthorized", "a valid Authorization: Bearer <key> header is needed")     \
  X(NOT_FOUND, 404, "not_found", "no such endpoint")                                               \
  X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "the endpoint does not take this method")       \
  X(BODY_TOO_LARGE, 413, "body_too_large", "the request body is larger than max_body_bytes")       \
  X(IMAGE_TOO_LARGE, 413, "image_too_large", "the image has more pixels than max_pixels")          \
  X(UNSUPPORTED_MEDIA, 415, "unsupported_media_type",                                              \
    "the body must be multipart/form-data or application/json")                                    \
  X(UNSUPPORTED_FORMAT, 415, "unsupported_format", "the image format is not supported")            \
  X(CORRUPT_IMAGE, 422, "corrupt_image", "the image data is corrupt or truncated")                 \
  X(IMAGE_MISMATCH, 422, "image_mismatch", "the two images cannot be compared")                    \
  X(IMAGE_TOO_SMALL, 422, "image_too_small", "padding=valid needs images of at least 11x11")       \
  X(INVALID_PIXELS, 422, "invalid_pixels", "the image contains values that are not numbers")       \
  X(QUEUE_FULL, 429, "queue_full", "the queue is full; retry later")                               \
  X(DRAINING, 503, "shutting_down", "the server is shutting down")                                 \
  X(TIMEOUT, 503, "timeout", "the request was not answered within request_timeout_s")              \
  X(ENGINE_UNAVAILABLE, 503, "engine_unavailable", "the compute engine is out of resources")       \
  X(INTERNAL, 500, "internal_error", "internal error; the request id is in the server log")

typedef enum {
#define SSIMD__ERROR_ENUM(name, status, code, message) SSIMD_ERROR_##name,
  SSIMD_ERROR_MAP(SSIMD__ERROR_ENUM)
#undef SSIMD__ERROR_ENUM
      SSIMD_ERROR_COUNT
} ssimd_error;

/* HTTP status of an error class (500 for an unknown class). */
unsigned ssimd_error_status(ssimd_error error);
/* Static snake_case code of API.md's error body ("queue_full"). Never NULL. */
const char *ssimd_error_code(ssimd_error error);
/* Static default message. Never NULL. */
const char *ssimd_error_message(ssimd_error error);

/* The class of a decode.h status (SSIMD_DECODE_E*); SSIMD_ERROR_INTERNAL for OK or unknown. */
ssimd_error ssimd_error_from_decode(int decode_status);
/* The class of an engine error (SSIM_E*): capacity and device trouble are 503, the rest 500 or
 * 422 (non-finite input, too small). */
ssimd_error ssimd_error_from_engine(int engine_err);

/*
 * The JSON error body of API.md, {"error": {"code", "message", "field"}}, as text. `message`
 * NULL means the class's default; `field` may be NULL. Returns a malloc'ed NUL-terminated string
 * the caller frees with free(), its length in *len; NULL when out of memory.
 */
char *ssimd_error_body(ssimd_error error, const char *message, const char *field, size_t *len);

#endif /* SSIMD_ERROR_H */
