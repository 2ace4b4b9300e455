/*
 * log.h: the daemon's log on stderr, one line per event, as text or JSON (log_format).
 *
 * Thread rules: every function may be called from any thread once ssimd_log_init has returned;
 * each line is written with one locked stdio call, so lines never interleave.
 */
#ifndef SSIMD_LOG_H
#define SSIMD_LOG_H

#include "config.h"

#include <stddef.h>

/* Choose the format; call before any thread starts. */
void ssimd_log_init(ssimd_log_format format);

/* One line about the daemon itself ("listening on ...", "draining"), printf-style. */
void ssimd_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ssimd_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What one request line reports. Strings are borrowed for the call. */
struct ssimd_log_request {
  const char *request_id;
  const char *method;
  const char *path;
  unsigned status;
  size_t bytes_in;  /* request body bytes received */
  size_t bytes_out; /* response body bytes */
  double duration_ms;
  unsigned pairs;    /* image pairs compared for this request */
  const char *error; /* the error code of an error answer, or NULL */
};

/* The request line, written when the answer has been sent (or the client went away). */
void ssimd_log_request(const struct ssimd_log_request *line);

#endif /* SSIMD_LOG_H */
