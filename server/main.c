/*
 * main.c: ssimd, the SSIM daemon. Configure, start the layers, wait for SIGTERM or SIGINT,
 * drain, stop them in reverse order.
 */
#include "app.h"
#include "auth.h"
#include "config.h"
#include "decode.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "scheduler.h"
#include "ssim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef SSIMD_VERSION
#define SSIMD_VERSION "0.0.0"
#endif

static const char *env_lookup(const char *name) {
  return getenv(name);
}

static void sleep_ms(long ms) {
  struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Poll `done` every 10 ms for at most `limit_s` seconds. Returns whether it became true. */
static int wait_until(int (*done)(struct ssimd_app *), struct ssimd_app *app, double limit_s) {
  for (long waited = 0; waited < (long)(limit_s * 1000); waited += 10) {
    if (done(app))
      return 1;
    sleep_ms(10);
  }
  return done(app);
}

/* Every request accepted before the drain began has been answered, and no job is left. */
static int nothing_accepted(struct ssimd_app *app) {
  return ssimd_http_accepted_requests() == 0 && ssimd_scheduler_admitted(app->scheduler) == 0;
}

static int nothing_active(struct ssimd_app *app) {
  (void)app;
  return ssimd_http_active_requests() == 0;
}

int main(int argc, char **argv) {
  struct ssimd_config config;
  char detail[512] = "";
  ssimd_config_init(&config);
  int rc = ssimd_config_parse(&config, argc, argv, env_lookup, detail, sizeof(detail));
  if (rc == 1) {
    if (ssimd_config_wants_version(argc, argv))
      printf("ssimd %s\n", SSIMD_VERSION);
    else
      ssimd_config_usage(stdout, "ssimd");
    return 0;
  }
  if (rc != 0) {
    fprintf(stderr, "ssimd: %s\n", detail);
    return 2;
  }
  ssimd_log_init(config.log_format);

  /* Every thread inherits this mask, so SIGTERM and SIGINT reach only sigwait below. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (ssimd_decode_init(argv[0], detail, sizeof(detail)) != 0) {
    fprintf(stderr, "ssimd: %s\n", detail);
    return 1;
  }
  struct ssimd_auth *auth = NULL;
  if (config.api_keys_file[0] != '\0' &&
      ssimd_auth_load(config.api_keys_file, &auth, detail, sizeof(detail)) != 0) {
    fprintf(stderr, "ssimd: %s\n", detail);
    ssimd_decode_shutdown();
    return 2;
  }

  struct ssim_engine_options engine_options;
  ssim_engine_options_init(&engine_options);
  engine_options.backend = config.backend;
  ssim_engine_t *engine = NULL;
  int err = ssim_engine_create(&engine_options, &engine, detail, sizeof(detail));
  if (err != 0) {
    fprintf(stderr, "ssimd: backend %s: %s: %s\n", config.backend, ssim_err_name(err), detail);
    ssimd_auth_free(auth);
    ssimd_decode_shutdown();
    return 1;
  }

  static struct ssimd_app app;
  app.config = &config;
  app.auth = auth;
  app.version = SSIMD_VERSION;
  app.backend_name = ssim_engine_backend_name(engine);
  snprintf(app.device_name, sizeof(app.device_name), "%s", ssim_engine_device_name(engine));
  atomic_init(&app.draining, 0);
  const char *endpoints[16];
  size_t endpoint_count = 0;
  for (size_t i = 0; i < ssimd_route_count && endpoint_count < 15; i++)
    endpoints[endpoint_count++] = ssimd_routes[i]->name;
  app.metrics = ssimd_metrics_create(endpoints, endpoint_count, app.version, app.backend_name);
  struct ssimd_scheduler_config scheduler_config = {
      .max_batch = config.max_batch,
      .batch_window_us = config.batch_window_us,
      .queue_limit = config.queue_limit,
      .request_timeout_s = config.request_timeout_s,
      .pool_threads = config.decode_threads,
  };
  if (app.metrics == NULL || ssimd_scheduler_start(&scheduler_config, engine, app.metrics,
                                                   &app.scheduler, detail, sizeof(detail)) != 0) {
    fprintf(stderr, "ssimd: %s\n", app.metrics == NULL ? "out of memory" : detail);
    if (app.metrics == NULL)
      ssim_engine_destroy(engine);
    ssimd_metrics_destroy(app.metrics);
    ssimd_auth_free(auth);
    ssimd_decode_shutdown();
    return 1;
  }
  if (ssimd_http_start(&app, detail, sizeof(detail)) != 0) {
    fprintf(stderr, "ssimd: %s\n", detail);
    ssimd_scheduler_stop(app.scheduler);
    ssimd_metrics_destroy(app.metrics);
    ssimd_auth_free(auth);
    ssimd_decode_shutdown();
    return 1;
  }
  ssimd_log_info("ssimd %s: backend %s on %s; max_batch %zu, batch_window_us %llu, queue_limit "
                 "%zu, decode_threads %zu, request_timeout_s %g%s",
                 app.version, app.backend_name, app.device_name, config.max_batch,
                 (unsigned long long)config.batch_window_us, config.queue_limit,
                 config.decode_threads, config.request_timeout_s,
                 auth != NULL ? ", API keys required" : "");

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  ssimd_log_info("%s: draining (new requests get 503; queued ones are answered)",
                 signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  atomic_store(&app.draining, 1);
  /* Every accepted job is answered by its deadline at the latest; a client still uploading a
   * body after that much time is cut off. */
  if (!wait_until(nothing_accepted, &app, config.request_timeout_s + 5))
    ssimd_log_error("drain: requests still open after request_timeout_s; stopping anyway");
  /* New connections are refused from here; requests on open ones are answered 503. */
  ssimd_http_quiesce();
  wait_until(nothing_active, &app, 1);
  ssimd_http_stop();
  ssimd_scheduler_stop(app.scheduler);
  ssimd_metrics_destroy(app.metrics);
  ssimd_auth_free(auth);
  ssimd_decode_shutdown();
  ssimd_log_info("stopped");
  return 0;
}
