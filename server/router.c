/*
 * router.c: (method, path) to a handler descriptor. Pure: no I/O, no globals.
 */
#include "router.h"

#include <stdio.h>
#include <string.h>

static int method_matches(const struct ssimd_handler *handler, const char *method) {
  if (strcmp(handler->method, method) == 0)
    return 1;
  /* libmicrohttpd drops the body of a HEAD answer itself. */
  return strcmp(method, "HEAD") == 0 && strcmp(handler->method, "GET") == 0;
}

ssimd_route_status ssimd_router_find(const struct ssimd_handler *const *table, size_t count,
                                     const char *method, const char *path,
                                     const struct ssimd_handler **out, char *allow,
                                     size_t allow_size) {
  int path_seen = 0;
  size_t allow_len = 0;
  if (allow_size > 0)
    allow[0] = '\0';
  *out = NULL;
  for (size_t i = 0; i < count; i++) {
    const struct ssimd_handler *handler = table[i];
    if (strcmp(handler->path, path) != 0)
      continue;
    if (method_matches(handler, method)) {
      *out = handler;
      return SSIMD_ROUTE_FOUND;
    }
    path_seen = 1;
    const char *also_head = strcmp(handler->method, "GET") == 0 ? ", HEAD" : "";
    int n = snprintf(allow + allow_len, allow_size - allow_len, "%s%s%s", allow_len > 0 ? ", " : "",
                     handler->method, also_head);
    if (n > 0 && allow_len + (size_t)n < allow_size)
      allow_len += (size_t)n;
  }
  return path_seen ? SSIMD_ROUTE_BAD_METHOD : SSIMD_ROUTE_NOT_FOUND;
}
