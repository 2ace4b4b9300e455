/*
 * log.c: text or JSON lines on stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Written once before threads start, read-only afterwards. */
static ssimd_log_format log_format = SSIMD_LOG_TEXT;

void ssimd_log_init(ssimd_log_format format) {
  log_format = format;
}

/* RFC 3339 UTC time with milliseconds. */
static void format_time(char *buf, size_t size) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, size - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/* Append `text` as the inside of a JSON string; control characters and quotes escaped. */
static size_t json_escape(char *out, size_t size, const char *text) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && n + 7 < size; p++) {
    if (*p == '"' || *p == '\\') {
      out[n++] = '\\';
      out[n++] = (char)*p;
    } else if (*p < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", *p);
    } else {
      out[n++] = (char)*p;
    }
  }
  out[n] = '\0';
  return n;
}

static void log_message(const char *level, const char *fmt, va_list args) {
  char message[1024];
  vsnprintf(message, sizeof(message), fmt, args);
  char when[40];
  format_time(when, sizeof(when));
  if (log_format == SSIMD_LOG_JSON) {
    char escaped[2048];
    json_escape(escaped, sizeof(escaped), message);
    fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when, level, escaped);
  } else {
    fprintf(stderr, "%s %s %s\n", when, level, message);
  }
}

void ssimd_log_info(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  log_message("info", fmt, args);
  va_end(args);
}

void ssimd_log_error(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  log_message("error", fmt, args);
  va_end(args);
}

void ssimd_log_request(const struct ssimd_log_request *line) {
  char when[40];
  format_time(when, sizeof(when));
  /* The path is the client's text: escape it in both formats so a line stays one line. */
  char path[512];
  json_escape(path, sizeof(path), line->path != NULL ? line->path : "");
  const char *error = line->error != NULL ? line->error : "";
  if (log_format == SSIMD_LOG_JSON) {
    fprintf(stderr,
            "{\"time\":\"%s\",\"level\":\"info\",\"request_id\":\"%s\",\"method\":\"%s\","
            "\"path\":\"%s\",\"status\":%u,\"bytes_in\":%zu,\"bytes_out\":%zu,"
            "\"duration_ms\":%.3f,\"pairs\":%u%s%s%s}\n",
            when, line->request_id, line->method, path, line->status, line->bytes_in,
            line->bytes_out, line->duration_ms, line->pairs, error[0] ? ",\"error\":\"" : "", error,
            error[0] ? "\"" : "");
  } else {
    fprintf(stderr,
            "%s info request id=%s method=%s path=\"%s\" status=%u bytes_in=%zu bytes_out=%zu "
            "duration_ms=%.3f pairs=%u%s%s\n",
            when, line->request_id, line->method, path, line->status, line->bytes_in,
            line->bytes_out, line->duration_ms, line->pairs, error[0] ? " error=" : "", error);
  }
}
