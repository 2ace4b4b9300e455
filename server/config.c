/*
 * config.c: flags and SSIM_* variables into struct ssimd_config, one declarative table.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum {
  OPT_LISTEN,
  OPT_CHOICE, /* one of `choices`, stored as a string */
  OPT_COUNT,  /* a size_t in [min, max], with an optional k/M/G or Ki/Mi/Gi suffix */
  OPT_U64,    /* a uint64_t in [min, max], same syntax */
  OPT_SECONDS,
  OPT_PATH,
  OPT_LOG_FORMAT
} option_type;

struct option_spec {
  const char *name; /* flag --name and variable SSIM_NAME */
  option_type type;
  size_t offset;
  size_t size; /* of a string field */
  double min, max;
  const char *choices; /* space-separated, for OPT_CHOICE */
  const char *default_text;
  const char *help;
};

#define FIELD(f) offsetof(struct ssimd_config, f), sizeof(((struct ssimd_config *)0)->f)

static const struct option_spec option_table[] = {
    {"listen", OPT_LISTEN, FIELD(listen_host), 0, 0, NULL, "0.0.0.0:8080",
     "address:port to listen on; port 0 picks a free one (IPv6 as [addr]:port)"},
    {"backend", OPT_CHOICE, FIELD(backend), 0, 0, "auto cpu cuda sycl", "auto",
     "engine backend: auto (CUDA if a device is usable, else CPU), cpu, cuda, sycl"},
    {"max_batch", OPT_COUNT, FIELD(max_batch), 1, 4096, NULL, "32", "pairs per engine call"},
    {"batch_window_us", OPT_U64, FIELD(batch_window_us), 0, 10e6, NULL, "2000",
     "longest wait for a batch to fill, in microseconds"},
    {"queue_limit", OPT_COUNT, FIELD(queue_limit), 1, 1e7, NULL, "256",
     "pairs accepted and not yet answered; more are refused with 429"},
    {"max_body_bytes", OPT_U64, FIELD(max_body_bytes), 1, 64.0 * 1024 * 1024 * 1024, NULL, "256Mi",
     "largest request body, in bytes"},
    {"max_pixels", OPT_U64, FIELD(max_pixels), 1, 1e12, NULL, "100M",
     "largest image, width x height, checked from the header"},
    {"decode_threads", OPT_COUNT, FIELD(decode_threads), 1, 1024, NULL, "cores",
     "threads that decode images and encode answers"},
    {"api_keys_file", OPT_PATH, FIELD(api_keys_file), 0, 0, NULL, "none",
     "file of API keys, one a line; when set, requests need Authorization: Bearer <key>"},
    {"request_timeout_s", OPT_SECONDS, FIELD(request_timeout_s), 0.001, 86400, NULL, "60",
     "deadline of an accepted request, and the idle timeout of a connection, in seconds"},
    {"log_format", OPT_LOG_FORMAT, FIELD(log_format), 0, 0, NULL, "text", "text or json"},
};

#define OPTION_COUNT (sizeof(option_table) / sizeof(option_table[0]))

void ssimd_config_init(struct ssimd_config *config) {
  memset(config, 0, sizeof(*config));
  snprintf(config->listen_host, sizeof(config->listen_host), "0.0.0.0");
  config->listen_port = 8080;
  snprintf(config->backend, sizeof(config->backend), "auto");
  config->max_batch = 32;
  config->batch_window_us = 2000;
  config->queue_limit = 256;
  config->max_body_bytes = 256ull << 20;
  config->max_pixels = 100000000ull;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  config->decode_threads = cores > 0 ? (size_t)cores : 1;
  config->request_timeout_s = 60;
  config->log_format = SSIMD_LOG_TEXT;
}

/* Compare a flag name with a table name, '-' and '_' alike. */
static int name_matches(const char *flag, size_t flag_len, const char *name) {
  if (strlen(name) != flag_len)
    return 0;
  for (size_t i = 0; i < flag_len; i++) {
    char c = flag[i] == '-' ? '_' : flag[i];
    if (c != name[i])
      return 0;
  }
  return 1;
}

/* "12", "256Mi", "100M", "4KiB": decimal k/M/G, binary Ki/Mi/Gi, an optional trailing B. */
static int parse_quantity(const char *text, double *out) {
  errno = 0;
  char *end = NULL;
  if (!isdigit((unsigned char)text[0]))
    return -1;
  unsigned long long whole = strtoull(text, &end, 10);
  if (errno != 0)
    return -1;
  double value = (double)whole;
  double scale = 1;
  if (*end == 'k' || *end == 'K')
    scale = 1e3;
  else if (*end == 'M')
    scale = 1e6;
  else if (*end == 'G')
    scale = 1e9;
  if (scale != 1) {
    end++;
    if (*end == 'i') {
      scale = scale == 1e3 ? 1024.0 : scale == 1e6 ? 1048576.0 : 1073741824.0;
      end++;
    }
  }
  if (*end == 'B')
    end++;
  if (*end != '\0')
    return -1;
  *out = value * scale;
  return 0;
}

/* "host:port" or "[v6]:port", numeric addresses only: a daemon should not resolve names. */
static int parse_listen(struct ssimd_config *config, const char *value) {
  const char *colon = strrchr(value, ':');
  if (colon == NULL || colon == value)
    return -1;
  size_t host_len = (size_t)(colon - value);
  const char *host = value;
  if (value[0] == '[') {
    if (colon[-1] != ']')
      return -1;
    host = value + 1;
    host_len -= 2;
  }
  if (host_len == 0 || host_len >= sizeof(config->listen_host))
    return -1;
  char host_buf[SSIMD_CONFIG_HOST_MAX];
  memcpy(host_buf, host, host_len);
  host_buf[host_len] = '\0';
  unsigned char addr[sizeof(struct in6_addr)];
  int family = value[0] == '[' ? AF_INET6 : AF_INET;
  if (inet_pton(family, host_buf, addr) != 1)
    return -1;
  char *end = NULL;
  errno = 0;
  if (!isdigit((unsigned char)colon[1]))
    return -1;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (errno != 0 || *end != '\0' || port > 65535)
    return -1;
  memcpy(config->listen_host, host_buf, host_len + 1);
  config->listen_port = (unsigned)port;
  return 0;
}

static int choice_allowed(const char *choices, const char *value) {
  size_t len = strlen(value);
  for (const char *p = choices; *p != '\0';) {
    const char *space = strchr(p, ' ');
    size_t n = space != NULL ? (size_t)(space - p) : strlen(p);
    if (n == len && strncmp(p, value, n) == 0)
      return 1;
    p += n + (space != NULL);
  }
  return 0;
}

/* Apply one value; `origin` ("--max_batch", "SSIM_MAX_BATCH") names it in the message. */
static int apply_option(struct ssimd_config *config, const struct option_spec *spec,
                        const char *value, const char *origin, char *detail, size_t detail_size) {
  char *field = (char *)config + spec->offset;
  double number = 0;
  switch (spec->type) {
  case OPT_LISTEN:
    if (parse_listen(config, value) == 0)
      return 0;
    snprintf(detail, detail_size,
             "%s: \"%s\" is not ADDRESS:PORT with a numeric address and a port in 0..65535", origin,
             value);
    return -1;
  case OPT_CHOICE:
    if (choice_allowed(spec->choices, value) && strlen(value) < spec->size) {
      snprintf(field, spec->size, "%s", value);
      return 0;
    }
    snprintf(detail, detail_size, "%s: \"%s\" is not one of: %s", origin, value, spec->choices);
    return -1;
  case OPT_LOG_FORMAT:
    if (strcmp(value, "text") == 0 || strcmp(value, "json") == 0) {
      *(ssimd_log_format *)(void *)field = value[0] == 't' ? SSIMD_LOG_TEXT : SSIMD_LOG_JSON;
      return 0;
    }
    snprintf(detail, detail_size, "%s: \"%s\" is not one of: text json", origin, value);
    return -1;
  case OPT_PATH:
    if (strlen(value) < spec->size) {
      snprintf(field, spec->size, "%s", value);
      return 0;
    }
    snprintf(detail, detail_size, "%s: the path is longer than %zu bytes", origin, spec->size - 1);
    return -1;
  case OPT_COUNT:
  case OPT_U64:
    if (parse_quantity(value, &number) == 0 && number >= spec->min && number <= spec->max) {
      if (spec->type == OPT_COUNT)
        *(size_t *)(void *)field = (size_t)number;
      else
        *(uint64_t *)(void *)field = (uint64_t)number;
      return 0;
    }
    snprintf(detail, detail_size,
             "%s: \"%s\" is not a whole number in [%.0f, %.0f] (suffixes k M G Ki Mi Gi)", origin,
             value, spec->min, spec->max);
    return -1;
  case OPT_SECONDS: {
    char *end = NULL;
    errno = 0;
    number = strtod(value, &end);
    if (errno == 0 && end != value && *end == '\0' && isfinite(number) && number >= spec->min &&
        number <= spec->max) {
      *(double *)(void *)field = number;
      return 0;
    }
    snprintf(detail, detail_size, "%s: \"%s\" is not a number of seconds in [%g, %g]", origin,
             value, spec->min, spec->max);
    return -1;
  }
  }
  return -1;
}

static int is_help_flag(const char *arg) {
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "--version") == 0;
}

int ssimd_config_wants_version(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--version") == 0)
      return 1;
  return 0;
}

int ssimd_config_parse(struct ssimd_config *config, int argc, char **argv,
                       ssimd_config_getenv getenv_fn, char *detail, size_t detail_size) {
  for (int i = 1; i < argc; i++)
    if (is_help_flag(argv[i]))
      return 1;

  /* The environment first, so that flags override it. */
  for (size_t k = 0; getenv_fn != NULL && k < OPTION_COUNT; k++) {
    char var[64] = "SSIM_";
    for (size_t j = 0; option_table[k].name[j] != '\0' && j + 6 < sizeof(var); j++)
      var[5 + j] = (char)toupper((unsigned char)option_table[k].name[j]);
    const char *value = getenv_fn(var);
    if (value != NULL &&
        apply_option(config, &option_table[k], value, var, detail, detail_size) != 0)
      return -1;
  }

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0) {
      snprintf(detail, detail_size, "unexpected argument \"%s\" (flags are --name=value)", arg);
      return -1;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct option_spec *spec = NULL;
    for (size_t k = 0; k < OPTION_COUNT && spec == NULL; k++)
      if (name_matches(name, name_len, option_table[k].name))
        spec = &option_table[k];
    if (spec == NULL) {
      snprintf(detail, detail_size, "unknown flag \"%.*s\" (see --help)", (int)(name_len + 2), arg);
      return -1;
    }
    const char *value = eq != NULL ? eq + 1 : NULL;
    if (value == NULL) {
      if (i + 1 >= argc) {
        snprintf(detail, detail_size, "--%s needs a value", spec->name);
        return -1;
      }
      value = argv[++i];
    }
    char origin[80];
    snprintf(origin, sizeof(origin), "--%s", spec->name);
    if (apply_option(config, spec, value, origin, detail, detail_size) != 0)
      return -1;
  }
  return 0;
}

void ssimd_config_usage(FILE *out, const char *argv0) {
  fprintf(out,
          "Usage: %s [--name=value ...]\n"
          "An HTTP daemon that compares images with SSIM (POST /ssim).\n\n"
          "Every flag has an environment variable SSIM_<NAME>; a flag wins over its variable.\n\n",
          argv0);
  for (size_t k = 0; k < OPTION_COUNT; k++) {
    const struct option_spec *spec = &option_table[k];
    char var[64] = "SSIM_";
    for (size_t j = 0; spec->name[j] != '\0' && j + 6 < sizeof(var); j++)
      var[5 + j] = (char)toupper((unsigned char)spec->name[j]);
    fprintf(out, "  --%-18s %-24s default %s\n  %21s%s\n", spec->name, var, spec->default_text, "",
            spec->help);
  }
  fprintf(out, "\n  --help, --version    print this text, or the version, and exit\n");
}
