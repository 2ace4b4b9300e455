/*
 * client.h: what the daemon's integration tests share: start a real `ssimd` on a free loopback
 * port (127.0.0.1 only), stop it and collect its exit status, read its memory use, and make HTTP
 * requests with libcurl.
 *
 * Every function is bounded in time: a daemon that does not start, answer or stop within its
 * limit makes the calling test fail rather than hang (ctest's TIMEOUT is the outer bound).
 */
#ifndef SSIMD_TEST_CLIENT_H
#define SSIMD_TEST_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

/* A running daemon. */
struct daemon_proc {
  pid_t pid;
  unsigned port;
  char log_path[512]; /* its stderr, kept until daemon_stop */
};

/*
 * Start SSIMD_PATH (the build's ssimd) with --listen 127.0.0.1:0 and the NULL-terminated
 * `args`, then wait (at most 20 s) for its "listening on 127.0.0.1:PORT" line. Returns 0, or -1
 * with the reason printed.
 */
int daemon_start(struct daemon_proc *proc, const char *const *args);

/* Send `sig` and wait at most `limit_s` seconds for the exit; SIGKILL after that. Returns the
 * exit status (0..255), or -1 when it was killed or died of a signal. Removes the log. */
int daemon_stop_signal(struct daemon_proc *proc, int sig, double limit_s);

/* SIGTERM, 30 s. */
int daemon_stop(struct daemon_proc *proc);

/* The daemon's resident set size in KiB, from /proc; -1 when unreadable. */
long daemon_rss_kib(const struct daemon_proc *proc);

/* A part of a multipart body. */
struct form_part {
  const char *name;
  const void *data;
  size_t len;
  const char *filename; /* NULL: a plain field */
};

struct http_reply {
  long status; /* 0 when the transfer failed */
  char *body;  /* NUL-terminated, malloc'ed */
  size_t len;
  char retry_after[32];
  char allow[64];
  char request_id[80];
  char content_type[128];
};

/* GET http://127.0.0.1:PORT`path`. `headers` NULL-terminated, may be NULL. Returns 0 when a
 * reply came (any status). 60 s limit. */
int http_get(unsigned port, const char *path, const char *const *headers, struct http_reply *reply);

/* POST a multipart/form-data body of `count` parts. */
int http_post_form(unsigned port, const char *path, const struct form_part *parts, size_t count,
                   const char *const *headers, struct http_reply *reply);

/* POST `len` bytes with `content_type`; `chunked` sends them with Transfer-Encoding: chunked. */
int http_post_raw(unsigned port, const char *path, const char *content_type, const void *body,
                  size_t len, int chunked, const char *const *headers, struct http_reply *reply);

/* Another request: any method, no body. */
int http_request(unsigned port, const char *method, const char *path, struct http_reply *reply);

void http_reply_free(struct http_reply *reply);

/* Whether `reply` is an error of API.md: JSON {"error": {"code": <code>, "message": ...}}, with
 * "field" equal to `field` when that is not NULL. Prints what differs. */
int reply_is_error(const struct http_reply *reply, long status, const char *code,
                   const char *field);

/* The value of a Prometheus sample line starting with `prefix` (e.g. "ssimd_batch_size_count"),
 * or -1 when absent. */
double metrics_value(const char *text, const char *prefix);

#endif /* SSIMD_TEST_CLIENT_H */
