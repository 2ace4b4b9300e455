/*
 * version.c: GET /version, the build version, the backend in use and its device.
 */
#include "handlers.h"

#include "../app.h"
#include "../http.h"

#include <jansson.h>
#include <string.h>

static void version_end(struct ssimd_request *req) {
  struct ssimd_app *app = req->app;
  json_t *body = json_pack("{s:s, s:s, s:s}", "version", app->version, "backend", app->backend_name,
                           "device", app->device_name);
  char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (text == NULL) {
    ssimd_request_send_error(req, SSIMD_ERROR_ENGINE_UNAVAILABLE, "out of memory", NULL);
    return;
  }
  ssimd_request_respond(req, 200, "application/json", text, strlen(text), 1);
}

const struct ssimd_handler ssimd_handler_version = {
    .method = "GET",
    .path = "/version",
    .name = "version",
    .on_end = version_end,
};
