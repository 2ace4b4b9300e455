/*
 * config.h: the daemon's configuration (API.md, "Configuration"): command-line flags, each with an
 * `SSIM_` environment variable; a flag wins over its variable, a variable over the default.
 *
 * Thread rules: filled once by main before any thread starts, read-only afterwards.
 */
#ifndef SSIMD_CONFIG_H
#define SSIMD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { SSIMD_LOG_TEXT = 0, SSIMD_LOG_JSON = 1 } ssimd_log_format;

#define SSIMD_CONFIG_HOST_MAX 128
#define SSIMD_CONFIG_PATH_MAX 4096

struct ssimd_config {
  char listen_host[SSIMD_CONFIG_HOST_MAX];   /* numeric IPv4 or IPv6 address, no brackets */
  unsigned listen_port;                      /* 0: any free port (printed at start) */
  char backend[8];                           /* auto, cpu, cuda, sycl */
  size_t max_batch;                          /* pairs per engine call */
  uint64_t batch_window_us;                  /* how long a batch may wait to fill */
  size_t queue_limit;                        /* pairs admitted and not yet answered */
  uint64_t max_body_bytes;                   /* request body limit */
  uint64_t max_pixels;                       /* width*height limit per image */
  size_t decode_threads;                     /* decode/encode pool size */
  char api_keys_file[SSIMD_CONFIG_PATH_MAX]; /* empty: no authentication */
  double request_timeout_s;                  /* deadline of an accepted request; idle timeout */
  ssimd_log_format log_format;
};

/* The defaults of API.md; decode_threads is the number of online cores. */
void ssimd_config_init(struct ssimd_config *config);

/* Looks an environment variable up; getenv in the daemon, a table in the tests. */
typedef const char *(*ssimd_config_getenv)(const char *name);

/*
 * Apply the environment (through `getenv_fn`, may be NULL for none) and then the flags in
 * argv[1..argc-1] ("--name=value", "--name value"; '-' and '_' are the same in names) to
 * `config`, which ssimd_config_init has filled. Returns 0; 1 when --help or --version was asked
 * for (the caller prints ssimd_config_usage and exits 0); -1 for an unknown flag or a bad value,
 * with `detail` naming the flag or variable and the values it takes.
 */
int ssimd_config_parse(struct ssimd_config *config, int argc, char **argv,
                       ssimd_config_getenv getenv_fn, char *detail, size_t detail_size);

/* Whether argv asks for --version (ssimd_config_parse returned 1 for it or for --help). */
int ssimd_config_wants_version(int argc, char **argv);

/* Print the flags, their variables, defaults and meaning. */
void ssimd_config_usage(FILE *out, const char *argv0);

#endif /* SSIMD_CONFIG_H */
