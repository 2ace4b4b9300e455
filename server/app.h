/*
 * app.h: what every handler can reach: configuration, metrics, scheduler, authentication and
 * the engine's identity.
 *
 * Thread rules: built by main before the HTTP server starts and torn down after it stops;
 * every field is read-only in between except `draining`, which is atomic.
 */
#ifndef SSIMD_APP_H
#define SSIMD_APP_H

#include "config.h"

#include <stdatomic.h>

struct ssimd_metrics;
struct ssimd_scheduler;
struct ssimd_auth;

struct ssimd_app {
  const struct ssimd_config *config;
  struct ssimd_metrics *metrics;
  struct ssimd_scheduler *scheduler;
  const struct ssimd_auth *auth; /* NULL: no API keys configured */
  const char *version;           /* build version, static */
  const char *backend_name;      /* engine backend in use, static */
  char device_name[256];         /* the engine's device, copied at start */
  atomic_int draining;           /* set once by the signal path; never cleared */
};

#endif /* SSIMD_APP_H */
