/*
 * health.c: GET /healthz and /livez (the process answers), GET /readyz (it would take work).
 */
#include "handlers.h"

#include "../app.h"
#include "../http.h"
#include "../scheduler.h"

#include <stdatomic.h>

static void alive_end(struct ssimd_request *req) {
  static const char body[] = "{\"status\":\"ok\"}";
  ssimd_request_respond(req, 200, "application/json", (void *)body, sizeof(body) - 1, 0);
}

/* Ready: the engine is up (it is created before the server listens), not draining, and the
 * queue has room. */
static void ready_end(struct ssimd_request *req) {
  struct ssimd_app *app = req->app;
  if (atomic_load(&app->draining)) {
    ssimd_request_send_error(req, SSIMD_ERROR_DRAINING, NULL, NULL);
  } else if (!ssimd_scheduler_ready(app->scheduler)) {
    ssimd_request_send_error(req, SSIMD_ERROR_QUEUE_FULL, "not ready: the queue is full", NULL);
  } else {
    static const char body[] = "{\"status\":\"ready\"}";
    ssimd_request_respond(req, 200, "application/json", (void *)body, sizeof(body) - 1, 0);
  }
}

const struct ssimd_handler ssimd_handler_healthz = {
    .method = "GET",
    .path = "/healthz",
    .name = "healthz",
    .public_endpoint = 1,
    .while_draining = 1,
    .on_end = alive_end,
};

const struct ssimd_handler ssimd_handler_livez = {
    .method = "GET",
    .path = "/livez",
    .name = "livez",
    .public_endpoint = 1,
    .while_draining = 1,
    .on_end = alive_end,
};

const struct ssimd_handler ssimd_handler_readyz = {
    .method = "GET",
    .path = "/readyz",
    .name = "readyz",
    .public_endpoint = 1,
    .while_draining = 1,
    .on_end = ready_end,
};
