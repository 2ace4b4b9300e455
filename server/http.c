/*
 * http.c: libmicrohttpd plumbing. The access callback resolves the route once, applies the
 * checks every endpoint shares (draining, API key, body limit), streams the body to the handler
 * and dispatches; everything endpoint-specific lives in handlers/.
 */
#include "http.h"

#include "app.h"
#include "auth.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum request_phase {
  PHASE_READING = 0, /* headers in, body streaming */
  PHASE_SUSPENDED,   /* waiting for ssimd_request_resume */
  PHASE_ANSWERED     /* a response is queued */
};

/* Owned by the thread that calls ssimd_http_start/_stop; the counters are atomic. */
static struct {
  struct MHD_Daemon *daemon;
  struct ssimd_app *app;
  atomic_size_t active;
  atomic_size_t accepted; /* requests past the draining check and not yet ended */
  atomic_uint_fast64_t next_id;
  unsigned id_salt;
} server;

static const char static_internal_error[] =
    "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}";

uint64_t ssimd_now_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

size_t ssimd_http_active_requests(void) {
  return atomic_load(&server.active);
}

size_t ssimd_http_accepted_requests(void) {
  return atomic_load(&server.accepted);
}

const char *ssimd_request_header(struct ssimd_request *req, const char *name) {
  return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *ssimd_request_query(struct ssimd_request *req, const char *name) {
  return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, name);
}

/* An incoming X-Request-Id is kept when it is 1-64 characters of [A-Za-z0-9._:-], so that it
 * cannot break a log line or a header. */
static int request_id_is_sane(const char *id) {
  size_t len = strlen(id);
  if (len == 0 || len >= SSIMD_REQUEST_ID_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok)
      return 0;
  }
  return 1;
}

static void queue_response(struct ssimd_request *req, unsigned status, const char *content_type,
                           void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                           const char *allow) {
  struct MHD_Response *response = MHD_create_response_from_buffer(len, body, mode);
  if (response == NULL) {
    if (mode == MHD_RESPMEM_MUST_FREE)
      free(body);
    return; /* libmicrohttpd closes the connection: nothing else can be sent */
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, "X-Request-Id", req->id);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == 429 || status == 503)
    MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if (allow != NULL)
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
  MHD_queue_response(req->connection, status, response);
  MHD_destroy_response(response);
  req->status = status;
  req->bytes_out = len;
  req->phase = PHASE_ANSWERED;
}

void ssimd_request_respond(struct ssimd_request *req, unsigned status, const char *content_type,
                           void *body, size_t len, int take) {
  queue_response(req, status, content_type, body, len,
                 take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY, NULL);
}

static void send_error_allow(struct ssimd_request *req, ssimd_error error, const char *message,
                             const char *field, const char *allow) {
  size_t len = 0;
  char *body = ssimd_error_body(error, message, field, &len);
  req->error_code = ssimd_error_code(error);
  if (error == SSIMD_ERROR_INTERNAL)
    ssimd_log_error("request %s: internal error: %s", req->id, message ? message : "(none)");
  if (body == NULL) {
    queue_response(req, 500, "application/json", (void *)static_internal_error,
                   sizeof(static_internal_error) - 1, MHD_RESPMEM_PERSISTENT, NULL);
    return;
  }
  queue_response(req, ssimd_error_status(error), "application/json", body, len,
                 MHD_RESPMEM_MUST_FREE, allow);
}

void ssimd_request_send_error(struct ssimd_request *req, ssimd_error error, const char *message,
                              const char *field) {
  send_error_allow(req, error, message, field, NULL);
}

void ssimd_request_fail(struct ssimd_request *req, ssimd_error error, const char *message,
                        const char *field) {
  if (req->deferred_error != SSIMD_ERROR_COUNT)
    return;
  req->deferred_error = error;
  snprintf(req->deferred_message, sizeof(req->deferred_message), "%s",
           message != NULL ? message : ssimd_error_message(error));
  req->deferred_field = field;
}

int ssimd_request_refuse(struct ssimd_request *req, ssimd_error error, const char *message,
                         const char *field) {
  const char *expect = ssimd_request_header(req, MHD_HTTP_HEADER_EXPECT);
  if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
    ssimd_request_send_error(req, error, message, field);
    return 1;
  }
  ssimd_request_fail(req, error, message, field);
  return 0;
}

int ssimd_request_failed(const struct ssimd_request *req) {
  return req->deferred_error != SSIMD_ERROR_COUNT;
}

void ssimd_request_suspend(struct ssimd_request *req) {
  req->phase = PHASE_SUSPENDED;
  MHD_suspend_connection(req->connection);
}

void ssimd_request_resume(struct ssimd_request *req, struct ssimd_answer *answer) {
  /* The connection thread reads `resumed` only after libmicrohttpd has processed the resume,
   * which orders this store before that read (libmicrohttpd locks around its resume list). */
  req->resumed = answer;
  MHD_resume_connection(req->connection);
}

struct ssimd_answer *ssimd_answer_error(ssimd_error error, const char *message, const char *field) {
  struct ssimd_answer *answer = calloc(1, sizeof(*answer));
  if (answer == NULL)
    return NULL;
  answer->body = ssimd_error_body(error, message, field, &answer->len);
  if (answer->body == NULL) {
    free(answer);
    return NULL;
  }
  answer->status = ssimd_error_status(error);
  answer->content_type = "application/json";
  answer->error_code = ssimd_error_code(error);
  if (error == SSIMD_ERROR_INTERNAL)
    ssimd_log_error("internal error: %s", message ? message : "(none)");
  return answer;
}

void ssimd_answer_free(struct ssimd_answer *answer) {
  if (answer == NULL)
    return;
  free(answer->body);
  free(answer);
}

static struct ssimd_request *request_new(struct MHD_Connection *connection, const char *url,
                                         const char *method) {
  struct ssimd_request *req = calloc(1, sizeof(*req));
  if (req == NULL)
    return NULL;
  req->app = server.app;
  req->connection = connection;
  req->method = method;
  req->start_ns = ssimd_now_ns();
  req->deferred_error = SSIMD_ERROR_COUNT;
  snprintf(req->path, sizeof(req->path), "%s", url);
  const char *incoming = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Request-Id");
  if (incoming != NULL && request_id_is_sane(incoming))
    snprintf(req->id, sizeof(req->id), "%s", incoming);
  else
    snprintf(req->id, sizeof(req->id), "%08x%08llx", server.id_salt,
             (unsigned long long)atomic_fetch_add(&server.next_id, 1));
  atomic_fetch_add(&server.active, 1);
  return req;
}

/* The checks of the first callback. Returns 1 when the request has been answered. */
static int request_begin(struct ssimd_request *req, const char *url) {
  struct ssimd_app *app = req->app;
  char allow[64];
  ssimd_route_status route = ssimd_router_find(ssimd_routes, ssimd_route_count, req->method, url,
                                               &req->handler, allow, sizeof(allow));
  if (route == SSIMD_ROUTE_NOT_FOUND) {
    ssimd_request_send_error(req, SSIMD_ERROR_NOT_FOUND, NULL, NULL);
    return 1;
  }
  if (route == SSIMD_ROUTE_BAD_METHOD) {
    send_error_allow(req, SSIMD_ERROR_METHOD_NOT_ALLOWED, NULL, NULL, allow);
    return 1;
  }
  const struct ssimd_handler *handler = req->handler;
  if (atomic_load(&app->draining) && !handler->while_draining) {
    ssimd_request_send_error(req, SSIMD_ERROR_DRAINING, NULL, NULL);
    return 1;
  }
  if (app->auth != NULL && !handler->public_endpoint &&
      !ssimd_auth_check(app->auth, ssimd_request_header(req, MHD_HTTP_HEADER_AUTHORIZATION))) {
    ssimd_request_send_error(req, SSIMD_ERROR_UNAUTHORIZED, NULL, NULL);
    return 1;
  }
  req->accepted = 1;
  atomic_fetch_add(&server.accepted, 1);
  req->body_limit = handler->body_limit == SSIMD_BODY_LIMIT_CONFIG ? app->config->max_body_bytes
                                                                   : handler->body_limit;
  /* A body the headers announce as too large is refused before a byte of it is read. */
  const char *length = ssimd_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (length != NULL && strtoull(length, NULL, 10) > req->body_limit) {
    ssimd_request_send_error(req, SSIMD_ERROR_BODY_TOO_LARGE, NULL, NULL);
    return 1;
  }
  if (handler->on_begin != NULL && handler->on_begin(req) != 0)
    return 1;
  return 0;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  (void)cls;
  (void)version;
  struct ssimd_request *req = *con_cls;
  if (req == NULL) {
    req = request_new(connection, url, method);
    if (req == NULL)
      return MHD_NO; /* out of memory: closing the connection is all that is left */
    *con_cls = req;
    request_begin(req, url);
    return MHD_YES;
  }

  if (req->phase == PHASE_SUSPENDED) {
    struct ssimd_answer *answer = req->resumed;
    req->resumed = NULL;
    if (answer == NULL) {
      req->error_code = "internal_error";
      queue_response(req, 500, "application/json", (void *)static_internal_error,
                     sizeof(static_internal_error) - 1, MHD_RESPMEM_PERSISTENT, NULL);
      return MHD_YES;
    }
    req->error_code = answer->error_code;
    req->pairs = answer->pairs;
    queue_response(req, answer->status, answer->content_type, answer->body, answer->len,
                   MHD_RESPMEM_MUST_FREE, NULL);
    free(answer);
    return MHD_YES;
  }

  if (*upload_data_size > 0) {
    size_t size = *upload_data_size;
    *upload_data_size = 0;
    if (req->phase == PHASE_ANSWERED)
      return MHD_YES;
    req->body_bytes += size;
    if (req->body_bytes > req->body_limit) {
      /* A chunked body that outgrows the limit: discard the rest and answer 413 at its end;
       * past twice the limit, close the connection rather than read without end. */
      req->body_overflow = 1;
      return req->body_bytes / 2 > req->body_limit ? MHD_NO : MHD_YES;
    }
    if (!ssimd_request_failed(req) && req->handler->on_body != NULL)
      req->handler->on_body(req, upload_data, size);
    return MHD_YES;
  }

  if (req->phase != PHASE_READING)
    return MHD_YES;
  if (req->body_overflow)
    ssimd_request_send_error(req, SSIMD_ERROR_BODY_TOO_LARGE, NULL, NULL);
  else if (ssimd_request_failed(req))
    ssimd_request_send_error(req, req->deferred_error, req->deferred_message, req->deferred_field);
  else
    req->handler->on_end(req);
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)connection;
  struct ssimd_request *req = *con_cls;
  if (req == NULL)
    return;
  *con_cls = NULL;
  double seconds = (double)(ssimd_now_ns() - req->start_ns) / 1e9;
  /* A request whose answer never went out (client gone, timeout while reading) logs 499, the
   * de-facto code for "client closed request". */
  unsigned status =
      toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || req->status != 0 ? req->status : 499;
  if (status == 0)
    status = 499;
  const char *endpoint = req->handler != NULL ? req->handler->name : "unmatched";
  ssimd_metrics_observe_request(req->app->metrics, endpoint, status, seconds);
  struct ssimd_log_request line = {
      .request_id = req->id,
      .method = req->method,
      .path = req->path,
      .status = status,
      .bytes_in = (size_t)req->body_bytes,
      .bytes_out = req->bytes_out,
      .duration_ms = seconds * 1e3,
      .pairs = req->pairs,
      .error = req->error_code,
  };
  ssimd_log_request(&line);
  if (req->handler != NULL && req->handler->on_free != NULL)
    req->handler->on_free(req);
  ssimd_answer_free(req->resumed);
  if (req->accepted)
    atomic_fetch_sub(&server.accepted, 1);
  free(req);
  atomic_fetch_sub(&server.active, 1);
}

static int fill_address(const struct ssimd_config *config, struct sockaddr_storage *addr,
                        socklen_t *len) {
  memset(addr, 0, sizeof(*addr));
  struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
  if (inet_pton(AF_INET, config->listen_host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)config->listen_port);
    *len = sizeof(*v4);
    return AF_INET;
  }
  if (inet_pton(AF_INET6, config->listen_host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)config->listen_port);
    *len = sizeof(*v6);
    return AF_INET6;
  }
  return -1;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char message[512];
  vsnprintf(message, sizeof(message), fmt, ap);
  size_t n = strlen(message);
  while (n > 0 && message[n - 1] == '\n')
    message[--n] = '\0';
  ssimd_log_info("libmicrohttpd: %s", message);
}

int ssimd_http_start(struct ssimd_app *app, char *detail, size_t detail_size) {
  const struct ssimd_config *config = app->config;
  server.app = app;
  struct timespec seed;
  clock_gettime(CLOCK_REALTIME, &seed);
  server.id_salt = (unsigned)(seed.tv_nsec ^ (seed.tv_sec << 16) ^ getpid());
  struct sockaddr_storage addr;
  socklen_t addr_len = 0;
  int family = fill_address(config, &addr, &addr_len);
  if (family < 0) {
    snprintf(detail, detail_size, "bad listen address %s", config->listen_host);
    return -1;
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  /* Connection threads only parse and dispatch; decode and compute have their own threads. */
  unsigned pool = cores >= 4 ? (unsigned)(cores < 16 ? cores : 16) : 4;
  unsigned timeout = (unsigned)(config->request_timeout_s + 0.999);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0);
  server.daemon =
      MHD_start_daemon(flags, (uint16_t)config->listen_port, NULL, NULL, on_access, NULL,
                       /* First, so that libmicrohttpd's own messages go through our log too. */
                       MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                       (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, pool,
                       MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_NOTIFY_COMPLETED,
                       on_completed, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
  if (server.daemon == NULL) {
    snprintf(detail, detail_size, "cannot listen on %s:%u (address in use or not available)",
             config->listen_host, config->listen_port);
    return -1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(server.daemon, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = info != NULL ? info->port : config->listen_port;
  if (family == AF_INET6)
    ssimd_log_info("listening on [%s]:%u", config->listen_host, port);
  else
    ssimd_log_info("listening on %s:%u", config->listen_host, port);
  return 0;
}

void ssimd_http_quiesce(void) {
  if (server.daemon == NULL)
    return;
  MHD_socket listener = MHD_quiesce_daemon(server.daemon);
  if (listener != MHD_INVALID_SOCKET)
    close(listener);
}

void ssimd_http_stop(void) {
  if (server.daemon != NULL)
    MHD_stop_daemon(server.daemon);
  server.daemon = NULL;
}
