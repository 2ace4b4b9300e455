/*
 * router.h: handler descriptors and the lookup from (method, path) to one of them.
 *
 * Each endpoint is one `const struct ssimd_handler` defined in server/handlers/<name>.c and
 * listed once in the routing table of routes.c; the libmicrohttpd callback only dispatches.
 */
#ifndef SSIMD_ROUTER_H
#define SSIMD_ROUTER_H

#include <stddef.h>
#include <stdint.h>

struct ssimd_request;

/* body_limit value meaning "the configured max_body_bytes". */
#define SSIMD_BODY_LIMIT_CONFIG UINT64_MAX

struct ssimd_handler {
  const char *method;  /* "GET", "POST" */
  const char *path;    /* matched exactly, query string excluded */
  const char *name;    /* the endpoint label of metrics and logs */
  uint64_t body_limit; /* largest body in bytes; 0: none accepted; SSIMD_BODY_LIMIT_CONFIG */
  int public_endpoint; /* 1: no API key needed (health and metrics) */
  int while_draining;  /* 1: still served while draining (health, metrics); else 503 */
  /* Optional; default none. The headers are in: set up req->state, or answer at once (then
   * return 1 and the body is not read). Returns 0 to go on. */
  int (*on_begin)(struct ssimd_request *req);
  /* Optional; default: the body is discarded. A chunk of the body; record an error with
   * ssimd_request_fail and it is answered when the body ends. */
  void (*on_body)(struct ssimd_request *req, const char *data, size_t size);
  /* Required. The whole body is in: answer with ssimd_request_respond / _send_error, or
   * suspend with ssimd_request_suspend and answer later with ssimd_request_resume. */
  void (*on_end)(struct ssimd_request *req);
  /* Optional; default none. Free req->state; called once when the request ends. */
  void (*on_free)(struct ssimd_request *req);
};

typedef enum {
  SSIMD_ROUTE_FOUND = 0,
  SSIMD_ROUTE_NOT_FOUND = 1, /* 404 */
  SSIMD_ROUTE_BAD_METHOD = 2 /* 405: the path exists with other methods, listed in `allow` */
} ssimd_route_status;

/*
 * Find the handler of `method` and `path` (no query string) in `table`. On SSIMD_ROUTE_FOUND
 * *out is the handler; on SSIMD_ROUTE_BAD_METHOD `allow` receives the methods the path takes
 * ("GET, HEAD"), comma-separated, for the Allow header. HEAD is served by a GET handler.
 */
ssimd_route_status ssimd_router_find(const struct ssimd_handler *const *table, size_t count,
                                     const char *method, const char *path,
                                     const struct ssimd_handler **out, char *allow,
                                     size_t allow_size);

/* The daemon's routing table (routes.c). */
extern const struct ssimd_handler *const ssimd_routes[];
extern const size_t ssimd_route_count;

#endif /* SSIMD_ROUTER_H */
