/*
 * metrics.c: GET /metrics, the Prometheus text exposition of server/metrics.h.
 */
#include "handlers.h"

#include "../app.h"
#include "../http.h"
#include "../metrics.h"

static void metrics_end(struct ssimd_request *req) {
  size_t len = 0;
  /* This request is in flight too; it is not counted in the gauge it reports. */
  char *text = ssimd_metrics_render(req->app->metrics, ssimd_http_active_requests() - 1, &len);
  if (text == NULL) {
    ssimd_request_send_error(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
    return;
  }
  ssimd_request_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, 1);
}

const struct ssimd_handler ssimd_handler_metrics = {
    .method = "GET",
    .path = "/metrics",
    .name = "metrics",
    .public_endpoint = 1,
    .while_draining = 1,
    .on_end = metrics_end,
};
