/*
 * http.h: the HTTP layer on libmicrohttpd: a thread pool with suspend/resume, routing,
 * authentication, body limits, request ids, the request log line, and the one family of
 * functions that send answers and errors.
 *
 * Thread rules: a struct ssimd_request belongs to the libmicrohttpd thread of its connection,
 * except while suspended: then only ssimd_request_resume may touch it, from any thread, once.
 * It is freed (with the handler's state) when the answer has been sent or the client went away.
 */
#ifndef SSIMD_HTTP_H
#define SSIMD_HTTP_H

#include "error.h"
#include "router.h"

#include <stddef.h>
#include <stdint.h>

struct ssimd_app;
struct MHD_Connection;

#define SSIMD_REQUEST_ID_MAX 65

/* An answer prepared away from the connection's thread, handed over by ssimd_request_resume. */
struct ssimd_answer {
  unsigned status;
  const char *content_type; /* static */
  char *body;               /* malloc'ed, owned by the answer */
  size_t len;
  const char *error_code; /* static, for the log line of an error answer; NULL otherwise */
  unsigned pairs;         /* image pairs compared, for the log line */
};

struct ssimd_request {
  struct ssimd_app *app;
  struct MHD_Connection *connection;
  const struct ssimd_handler *handler; /* NULL when no route matched */
  void *state;                         /* the handler's; freed by handler->on_free */
  char id[SSIMD_REQUEST_ID_MAX];       /* X-Request-Id, sent back on every answer */
  const char *method;                  /* libmicrohttpd's, valid for the request's life */
  char path[256];                      /* truncated copy, for logs */
  uint64_t start_ns;                   /* CLOCK_MONOTONIC at the first callback */
  uint64_t body_bytes;                 /* received so far */
  uint64_t body_limit;                 /* resolved from handler->body_limit */
  /* Private to http.c. */
  int phase;
  int accepted; /* counted in ssimd_http_accepted_requests */
  int body_overflow;
  ssimd_error deferred_error; /* recorded by ssimd_request_fail; SSIMD_ERROR_COUNT: none */
  char deferred_message[256];
  const char *deferred_field;
  struct ssimd_answer *resumed;
  unsigned status;
  size_t bytes_out;
  const char *error_code;
  unsigned pairs;
};

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t ssimd_now_ns(void);

/*
 * Start listening on the configured address with a libmicrohttpd thread pool. Returns 0 and
 * logs "listening on ADDRESS:PORT" (the bound port when the configured one is 0), or -1 with
 * `detail` set. `app` must outlive ssimd_http_stop.
 */
int ssimd_http_start(struct ssimd_app *app, char *detail, size_t detail_size);

/* Requests begun and not yet ended (any endpoint, including suspended ones). Any thread. */
size_t ssimd_http_active_requests(void);

/* Requests that passed the draining check and have not ended: what a drain waits for. */
size_t ssimd_http_accepted_requests(void);

/* Stop accepting connections; the open ones are still served. */
void ssimd_http_quiesce(void);

/* Stop the server and close every connection. No request may be suspended. */
void ssimd_http_stop(void);

/* A request header, or NULL. Valid for the request's life. Connection thread only. */
const char *ssimd_request_header(struct ssimd_request *req, const char *name);
/* A query parameter, or NULL. Connection thread only. */
const char *ssimd_request_query(struct ssimd_request *req, const char *name);

/*
 * Answer now, on the connection thread (from on_begin or on_end). Takes `body` (malloc'ed,
 * freed by the server) when `take` is 1; copies it when 0.
 */
void ssimd_request_respond(struct ssimd_request *req, unsigned status, const char *content_type,
                           void *body, size_t len, int take);

/* Answer with API.md's JSON error body (message NULL: the class's default; field may be NULL).
 * Adds Retry-After to 429/503 and Allow (from `allow`, may be NULL) to 405. */
void ssimd_request_send_error(struct ssimd_request *req, ssimd_error error, const char *message,
                              const char *field);

/* Record an error found while the body streams in (the first one wins); it is sent when the
 * body ends, and the rest of the body is discarded. Connection thread only. */
void ssimd_request_fail(struct ssimd_request *req, ssimd_error error, const char *message,
                        const char *field);

/* Refuse a request from on_begin, before its body: at once when the client waits for a go-ahead
 * (Expect: 100-continue) and will not upload; otherwise with ssimd_request_fail, once the body it
 * is already sending has been read and dropped (answering and closing under an upload resets the
 * connection, and the client may never read the answer). Returns on_begin's value: 1 when the
 * request was answered now, 0 when the answer waits for the body. */
int ssimd_request_refuse(struct ssimd_request *req, ssimd_error error, const char *message,
                         const char *field);

/* Whether ssimd_request_fail has been called. */
int ssimd_request_failed(const struct ssimd_request *req);

/* Suspend the connection from on_end; the request must then be resumed exactly once. */
void ssimd_request_suspend(struct ssimd_request *req);

/*
 * Hand `answer` (taken) to a suspended request and resume its connection. Any thread, exactly
 * once per suspend; the caller must not touch `req` afterwards (it may already be freed).
 */
void ssimd_request_resume(struct ssimd_request *req, struct ssimd_answer *answer);

/* A new answer carrying API.md's error body; NULL when out of memory. Any thread. */
struct ssimd_answer *ssimd_answer_error(ssimd_error error, const char *message, const char *field);

/* Free an answer that was not handed over. NULL is allowed. */
void ssimd_answer_free(struct ssimd_answer *answer);

#endif /* SSIMD_HTTP_H */
