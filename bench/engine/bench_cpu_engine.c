/*
 * bench_cpu_engine.c: throughput of the CPU engine against scikit-image and PyTorch.
 *
 *   bench_cpu_engine [--peers bench/engine/peers.py] [--python python3] [--repeats N]
 *                    [--sizes 1920x1080,3840x2160] [--threads 1,0]
 *
 * For each size (3 channels, float32) and thread count (0 = every online core) it times, as the
 * median of N runs after one warm-up, the forward pass (scores only) and the forward pass with
 * both gradients, in one engine call each. With --peers it runs the peer script in the same
 * invocation, on the same shapes and thread counts, and prints ratios to it.
 *
 * Throughput is channel-megapixels per second (channels*height*width / 1e6 / seconds). The
 * fraction of peak compares a nominal flop count of the algorithm (see FLOPS_*) with the
 * machine's nominal float32 FMA peak: cores x GHz x lanes x 2, lanes from the cpuid flags in
 * /proc/cpuinfo (16 with avx512f, 8 with avx2, else 4), GHz from its "cpu MHz", one FMA per
 * cycle per core. It is nominal: turbo, a second FMA port or shared cores move the real peak.
 */
#define _POSIX_C_SOURCE 200809L

#include "ssim.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Nominal flops per channel-pixel. Forward: 5 blurred quantities (x, y, x^2, y^2, xy), each an
 * 11-tap horizontal and an 11-tap vertical pass of multiply-adds (5 * 22 * 2 = 220), plus the
 * 3 products and the SSIM formula (about 30). Both gradients add the blur of the 5 partial
 * derivatives of the map (another 220) and their combination per pixel (about 40).
 */
#define FLOPS_FORWARD 250.0
#define FLOPS_FORWARD_BACKWARD 510.0

#define MAX_SIZES 8
#define MAX_THREADS 8

struct size {
  size_t width, height;
};

struct options {
  const char *peers;
  const char *python;
  int repeats;
  struct size sizes[MAX_SIZES];
  size_t size_count;
  int threads[MAX_THREADS];
  size_t thread_count;
};

/* Peer timings in seconds for one shape and thread count; NAN where not measured. */
struct peer_times {
  double skimage_forward;
  double torch_forward;
  double torch_forward_backward;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *values, int count) {
  qsort(values, (size_t)count, sizeof(double), compare_doubles);
  return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

/* Nominal machine facts read from /proc/cpuinfo. */
struct machine {
  char model[128];
  int cores;
  double ghz;
  int lanes;
  const char *isa;
};

static void machine_read(struct machine *m) {
  snprintf(m->model, sizeof(m->model), "unknown");
  m->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  m->ghz = 0.0;
  m->lanes = 4;
  m->isa = "sse";
  FILE *file = fopen("/proc/cpuinfo", "r");
  if (file == NULL)
    return;
  char line[8192];
  int have_flags = 0;
  while (fgets(line, sizeof(line), file) != NULL) {
    char *colon = strchr(line, ':');
    if (colon == NULL)
      continue;
    char *value = colon + 1;
    while (*value == ' ')
      value++;
    value[strcspn(value, "\n")] = '\0';
    if (strncmp(line, "model name", 10) == 0 && strcmp(m->model, "unknown") == 0) {
      snprintf(m->model, sizeof(m->model), "%s", value);
    } else if (strncmp(line, "cpu MHz", 7) == 0 && m->ghz == 0.0) {
      m->ghz = atof(value) / 1000.0;
    } else if (strncmp(line, "flags", 5) == 0 && !have_flags) {
      have_flags = 1;
      /* Match whole words: "avx512f" must not be found inside another flag's name. */
      char padded[8200];
      snprintf(padded, sizeof(padded), " %s ", value);
      if (strstr(padded, " avx512f ") != NULL) {
        m->lanes = 16;
        m->isa = "avx512f";
      } else if (strstr(padded, " avx2 ") != NULL) {
        m->lanes = 8;
        m->isa = "avx2";
      }
    }
  }
  fclose(file);
}

/* Nominal float32 peak of `cores` cores in flop/s. */
static double machine_peak(const struct machine *m, int cores) {
  return (double)cores * m->ghz * 1e9 * (double)m->lanes * 2.0;
}

/* Deterministic image pair: a smooth pattern and a noisy copy, in [0, 1]. */
static void fill_pair(float *img1, float *img2, size_t count) {
  uint32_t seed = 12345;
  for (size_t i = 0; i < count; i++) {
    float base = 0.5f + 0.4f * sinf((float)(i % 1931) * 0.01f) * cosf((float)(i / 1931) * 0.003f);
    seed = seed * 1664525u + 1013904223u;
    float noise = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
    float noisy = base + noise;
    img2[i] = base;
    img1[i] = noisy < 0.0f ? 0.0f : noisy > 1.0f ? 1.0f : noisy;
  }
}

/* Median seconds of `repeats` engine calls (after one warm-up), or a negative error code. */
static double time_engine(ssim_engine_t *engine, const struct ssim_inputs *in,
                          const struct ssim_outputs *out, int repeats) {
  double samples[64];
  if (repeats > 64)
    repeats = 64;
  int rc = ssim_compute(engine, in, out);
  if (rc != 0)
    return (double)rc;
  for (int r = 0; r < repeats; r++) {
    double start = now_seconds();
    rc = ssim_compute(engine, in, out);
    samples[r] = now_seconds() - start;
    if (rc != 0)
      return (double)rc;
  }
  return median(samples, repeats);
}

/* Read one number "key": value out of the peer script's one-line JSON answer. */
static double json_number(const char *line, const char *key) {
  char quoted[64];
  snprintf(quoted, sizeof(quoted), "\"%s\":", key);
  const char *at = strstr(line, quoted);
  if (at == NULL)
    return NAN;
  at += strlen(quoted);
  while (*at == ' ')
    at++;
  if (strncmp(at, "null", 4) == 0)
    return NAN;
  return atof(at);
}

static void run_peers(const struct options *opt, const struct size *size, int threads,
                      int with_skimage, struct peer_times *times) {
  times->skimage_forward = times->torch_forward = times->torch_forward_backward = NAN;
  if (opt->peers == NULL)
    return;
  char command[1024];
  snprintf(command, sizeof(command),
           "%s %s --height %zu --width %zu --channels 3 --threads %d --repeats %d%s", opt->python,
           opt->peers, size->height, size->width, threads, opt->repeats,
           with_skimage ? "" : " --no-skimage");
  FILE *pipe = popen(command, "r");
  if (pipe == NULL) {
    fprintf(stderr, "bench: cannot run %s\n", command);
    return;
  }
  char line[1024] = "";
  char last[1024] = "";
  while (fgets(line, sizeof(line), pipe) != NULL)
    snprintf(last, sizeof(last), "%s", line);
  if (pclose(pipe) != 0) {
    fprintf(stderr, "bench: peer script failed: %s\n", command);
    return;
  }
  times->skimage_forward = json_number(last, "skimage_forward");
  times->torch_forward = json_number(last, "torch_forward");
  times->torch_forward_backward = json_number(last, "torch_forward_backward");
}

static int parse_list(const char *text, struct options *opt, int sizes) {
  char *copy = strdup(text);
  if (copy == NULL)
    return -1;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
    if (sizes) {
      unsigned long w = 0, h = 0;
      if (opt->size_count >= MAX_SIZES || sscanf(item, "%lux%lu", &w, &h) != 2 || w < 11 ||
          h < 11) {
        free(copy);
        return -1;
      }
      opt->sizes[opt->size_count++] = (struct size){w, h};
    } else {
      if (opt->thread_count >= MAX_THREADS) {
        free(copy);
        return -1;
      }
      opt->threads[opt->thread_count++] = atoi(item);
    }
  }
  free(copy);
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_cpu_engine [--peers peers.py] [--python python3] [--repeats N]\n"
                  "                        [--sizes WxH,...] [--threads N,...] (0 = all cores)\n");
}

static int parse_options(int argc, char **argv, struct options *opt) {
  memset(opt, 0, sizeof(*opt));
  opt->python = "python3";
  opt->repeats = 5;
  for (int i = 1; i < argc; i++) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (value == NULL) {
      usage();
      return -1;
    }
    if (strcmp(argv[i], "--peers") == 0) {
      opt->peers = value;
    } else if (strcmp(argv[i], "--python") == 0) {
      opt->python = value;
    } else if (strcmp(argv[i], "--repeats") == 0) {
      opt->repeats = atoi(value);
      if (opt->repeats < 1 || opt->repeats > 64) {
        usage();
        return -1;
      }
    } else if (strcmp(argv[i], "--sizes") == 0) {
      if (parse_list(value, opt, 1) != 0) {
        usage();
        return -1;
      }
    } else if (strcmp(argv[i], "--threads") == 0) {
      if (parse_list(value, opt, 0) != 0) {
        usage();
        return -1;
      }
    } else {
      usage();
      return -1;
    }
    i++;
  }
  if (opt->size_count == 0) {
    opt->sizes[opt->size_count++] = (struct size){1920, 1080};
    opt->sizes[opt->size_count++] = (struct size){3840, 2160};
  }
  if (opt->thread_count == 0) {
    opt->threads[opt->thread_count++] = 1;
    opt->threads[opt->thread_count++] = 0;
  }
  return 0;
}

/* Milliseconds, or "-" where the peer was not measured. */
static const char *millis(char *buf, size_t size, double seconds) {
  if (isnan(seconds))
    return "-";
  snprintf(buf, size, "%.1f", seconds * 1e3);
  return buf;
}

/* "12.3x", or "-" where the peer was not measured. */
static const char *ratio(char *buf, size_t size, double peer_seconds, double our_seconds) {
  if (isnan(peer_seconds))
    return "-";
  snprintf(buf, size, "%.1fx", peer_seconds / our_seconds);
  return buf;
}

int main(int argc, char **argv) {
  struct options opt;
  if (parse_options(argc, argv, &opt) != 0)
    return 2;
  struct machine machine;
  machine_read(&machine);
  printf("machine: %s, %d cores online, %.2f GHz nominal, %s (%d float32 lanes)\n", machine.model,
         machine.cores, machine.ghz, machine.isa, machine.lanes);
  printf("peak (nominal) = cores x GHz x lanes x 2 = %.1f GFLOP/s on all cores\n",
         machine_peak(&machine, machine.cores) / 1e9);
  printf("median of %d runs; Mpx/s = channel-megapixels per second; ratio = peer time / ours\n\n",
         opt.repeats);
  printf("| size | threads | pass | ssim ms | Mpx/s | scikit-image ms | ratio | PyTorch ms | "
         "ratio | / forward | of peak |\n");
  printf("|---|---|---|---|---|---|---|---|---|---|---|\n");

  double skimage_by_size[MAX_SIZES];
  for (size_t s = 0; s < opt.size_count; s++)
    skimage_by_size[s] = NAN;
  for (size_t s = 0; s < opt.size_count; s++) {
    const struct size *size = &opt.sizes[s];
    size_t count = 3 * size->width * size->height;
    float *img1 = malloc(count * sizeof(float));
    float *img2 = malloc(count * sizeof(float));
    float *grad1 = malloc(count * sizeof(float));
    float *grad2 = malloc(count * sizeof(float));
    if (img1 == NULL || img2 == NULL || grad1 == NULL || grad2 == NULL) {
      fprintf(stderr, "bench: out of memory\n");
      return 1;
    }
    fill_pair(img1, img2, count);
    for (size_t t = 0; t < opt.thread_count; t++) {
      int threads = opt.threads[t];
      int cores = threads == 0 ? machine.cores : threads;
      struct ssim_engine_options engine_options;
      ssim_engine_options_init(&engine_options);
      engine_options.backend = "cpu";
      engine_options.threads = threads;
      ssim_engine_t *engine = NULL;
      char detail[256] = "";
      if (ssim_engine_create(&engine_options, &engine, detail, sizeof(detail)) != 0) {
        fprintf(stderr, "bench: engine: %s\n", detail);
        return 1;
      }
      struct ssim_inputs in = {
          .shape = {1, 3, size->height, size->width},
          .dtype = SSIM_DTYPE_F32,
          .padding = SSIM_PADDING_SAME,
          .memory = SSIM_MEMORY_HOST,
          .img1 = img1,
          .img2 = img2,
      };
      double score = 0.0;
      struct ssim_outputs forward = {.scores = &score};
      struct ssim_outputs backward = {.scores = &score, .grad_img1 = grad1, .grad_img2 = grad2};
      double t_forward = time_engine(engine, &in, &forward, opt.repeats);
      double t_backward = time_engine(engine, &in, &backward, opt.repeats);
      ssim_engine_destroy(engine);
      if (t_forward < 0.0 || t_backward < 0.0) {
        fprintf(stderr, "bench: ssim_compute failed\n");
        return 1;
      }

      /* scikit-image is single-threaded whatever the setting: it runs once per size. */
      struct peer_times peers;
      run_peers(&opt, size, cores, isnan(skimage_by_size[s]), &peers);
      if (isnan(skimage_by_size[s]))
        skimage_by_size[s] = peers.skimage_forward;
      double mpx = (double)count / 1e6;
      char sk_ms[32], sk_x[32], pt_ms[32], pt_x[32];
      printf("| %zux%zux3 | %d | forward | %.1f | %.0f | %s | %s | %s | %s | | %.1f%% |\n",
             size->width, size->height, cores, t_forward * 1e3, mpx / t_forward,
             millis(sk_ms, sizeof(sk_ms), skimage_by_size[s]),
             ratio(sk_x, sizeof(sk_x), skimage_by_size[s], t_forward),
             millis(pt_ms, sizeof(pt_ms), peers.torch_forward),
             ratio(pt_x, sizeof(pt_x), peers.torch_forward, t_forward),
             100.0 * FLOPS_FORWARD * (double)count / t_forward / machine_peak(&machine, cores));
      printf("| %zux%zux3 | %d | forward + both gradients | %.1f | %.0f | - | - | %s | %s | "
             "%.2f | %.1f%% |\n",
             size->width, size->height, cores, t_backward * 1e3, mpx / t_backward,
             millis(pt_ms, sizeof(pt_ms), peers.torch_forward_backward),
             ratio(pt_x, sizeof(pt_x), peers.torch_forward_backward, t_backward),
             t_backward / t_forward,
             100.0 * FLOPS_FORWARD_BACKWARD * (double)count / t_backward /
                 machine_peak(&machine, cores));
      fflush(stdout);
    }
    free(img1);
    free(img2);
    free(grad1);
    free(grad2);
  }
  return 0;
}
