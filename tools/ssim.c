/*
 * ssim.c: the `ssim` command, SSIM of two image files on the command line.
 *
 *   ssim compare A B [options]
 *
 * It decodes both files with the daemon's decoder, prepares the pair the same way, runs one
 * engine call and prints the score (or the daemon's JSON answer), so that a number from the
 * command line and one from the HTTP API agree. Every failure is one line on stderr and an exit
 * code of its own (see usage()).
 */
#include "decode.h"
#include "options.h"
#include "render.h"
#include "response.h"
#include "ssim.h"

#include <glib.h>
#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SSIM_VERSION
#define SSIM_VERSION "unknown"
#endif

/* Exit codes, one per kind of failure, so that scripts can tell them apart. */
enum exit_code {
  EXIT_OK = 0,
  EXIT_BELOW_THRESHOLD = 1, /* computed, but the score is below --threshold */
  EXIT_USAGE = 2,           /* bad command line or option value */
  EXIT_UNREADABLE = 3,      /* an input file cannot be read */
  EXIT_FORMAT = 4,          /* an input is not an image in a supported format */
  EXIT_CORRUPT = 5,         /* an input's pixel data is corrupt, or the image is too large */
  EXIT_SIZE_MISMATCH = 6,   /* the images differ in width or height */
  EXIT_COLOUR_MISMATCH = 7, /* grey against colour with --color rgb */
  EXIT_TOO_SMALL = 8,       /* smaller than 11x11 with --padding valid */
  EXIT_COMPUTE = 9,         /* the engine failed (no such backend, out of memory, ...) */
  EXIT_WRITE = 10           /* an output file cannot be written */
};

/* Images larger than this are refused: 4 gigapixels, far beyond any real photograph, but a
 * bound on what a damaged header can make us allocate. */
#define TOOL_MAX_PIXELS ((size_t)1 << 32)

#define DETAIL_MAX 512

static void usage(FILE *out) {
  fprintf(out,
          "usage: ssim compare IMG1 IMG2 [options]\n"
          "       ssim --help | --version\n"
          "\n"
          "SSIM (11x11 Gaussian window, sigma 1.5) of IMG1, the image under test, against IMG2,\n"
          "the reference. Prints the score and the score of each channel, or with --json the\n"
          "answer of the ssimd HTTP API.\n"
          "\n"
          "options:\n"
          "  --padding same|valid      zero padding (default), or crop the map by 5 pixels\n"
          "  --color rgb|luma          every channel (default), or BT.709 luma only\n"
          "  --map FILE.png            write the SSIM map as an 8-bit grey PNG\n"
          "  --gradient img1|img2|both gradients of the score to compute (needs --gradient-out\n"
          "                            or --json)\n"
          "  --gradient-out PREFIX     write PREFIX-img1.png / PREFIX-img2.png (default: both)\n"
          "  --gradient-format f32|png how --json encodes gradients (default f32)\n"
          "  --json                    print the JSON answer of POST /ssim\n"
          "  --json-map none|png|f32   include the map in the JSON answer (default none)\n"
          "  --threshold T             pass when the score is >= T (in [-1, 1]); exit 1 if not\n"
          "  --backend auto|cpu|cuda   engine backend (default auto: CUDA when usable)\n"
          "  --threads N               CPU threads, 0 = all cores (default 0)\n"
          "\n"
          "exit codes:\n"
          "  0 success              1 score below --threshold   2 bad command line\n"
          "  3 unreadable file      4 unsupported format        5 corrupt or too large image\n"
          "  6 size mismatch        7 grey against colour       8 too small for --padding valid\n"
          "  9 computation failed   10 cannot write an output file\n");
}

/* Print "ssim: MESSAGE" on stderr and return `code`. */
static int fail(int code, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("ssim: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  return code;
}

/* The command line of `compare`. */
struct compare_args {
  const char *files[2];
  struct ssimd_options options;
  const char *map_path;
  const char *gradient_prefix;
  int gradient_given;
  int json;
  struct ssim_engine_options engine;
};

/* Is `arg` the flag `name`, as "--name value" or "--name=value"? Sets *value and advances *i. */
static int take_flag(int argc, char **argv, int *i, const char *name, const char **value,
                     int *missing) {
  const char *arg = argv[*i];
  size_t len = strlen(name);
  if (strncmp(arg, name, len) != 0)
    return 0;
  if (arg[len] == '=') {
    *value = arg + len + 1;
    return 1;
  }
  if (arg[len] != '\0')
    return 0;
  if (*i + 1 >= argc) {
    *missing = 1;
    return 1;
  }
  *value = argv[++*i];
  return 1;
}

static int parse_threads(const char *text, int *threads) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || value < 0 || value > 4096)
    return -1;
  *threads = (int)value;
  return 0;
}

/* Parse the arguments after "compare". Returns EXIT_OK or EXIT_USAGE (message printed). */
static int parse_compare(int argc, char **argv, struct compare_args *args) {
  memset(args, 0, sizeof(*args));
  ssimd_options_init(&args->options);
  ssim_engine_options_init(&args->engine);
  int files = 0;
  for (int i = 0; i < argc; i++) {
    const char *value = NULL;
    int missing = 0;
    char detail[DETAIL_MAX] = "";
    const char *arg = argv[i];
    if (strcmp(arg, "--json") == 0) {
      args->json = 1;
    } else if (take_flag(argc, argv, &i, "--padding", &value, &missing) ||
               take_flag(argc, argv, &i, "--color", &value, &missing) ||
               take_flag(argc, argv, &i, "--gradient-format", &value, &missing) ||
               take_flag(argc, argv, &i, "--gradient", &value, &missing) ||
               take_flag(argc, argv, &i, "--json-map", &value, &missing) ||
               take_flag(argc, argv, &i, "--threshold", &value, &missing)) {
      if (missing)
        return fail(EXIT_USAGE, "%s needs a value", arg);
      /* The flag's name without "--", with '-' as '_', is the option's API name (`arg` is
       * still the flag itself: take_flag only moved i on to its value). */
      char name[32];
      size_t n = strcspn(arg + 2, "=");
      snprintf(name, sizeof(name), "%.*s", (int)n, arg + 2);
      for (char *c = name; *c != '\0'; c++)
        *c = *c == '-' ? '_' : *c;
      if (strcmp(name, "json_map") == 0)
        snprintf(name, sizeof(name), "map");
      if (ssimd_options_set(&args->options, name, value, detail, sizeof(detail)) != 0)
        return fail(EXIT_USAGE, "%s", detail);
      if (strcmp(name, "gradient") == 0)
        args->gradient_given = 1;
    } else if (take_flag(argc, argv, &i, "--map", &value, &missing)) {
      if (missing || value[0] == '\0')
        return fail(EXIT_USAGE, "--map needs a file name");
      args->map_path = value;
    } else if (take_flag(argc, argv, &i, "--gradient-out", &value, &missing)) {
      if (missing || value[0] == '\0')
        return fail(EXIT_USAGE, "--gradient-out needs a file name prefix");
      args->gradient_prefix = value;
    } else if (take_flag(argc, argv, &i, "--backend", &value, &missing)) {
      if (missing)
        return fail(EXIT_USAGE, "--backend needs a value");
      args->engine.backend = value;
    } else if (take_flag(argc, argv, &i, "--threads", &value, &missing)) {
      if (missing || parse_threads(value, &args->engine.threads) != 0)
        return fail(EXIT_USAGE, "--threads needs a whole number from 0 to 4096");
    } else if (arg[0] == '-' && arg[1] != '\0') {
      return fail(EXIT_USAGE, "unknown option %s (see ssim --help)", arg);
    } else if (files < 2) {
      args->files[files++] = arg;
    } else {
      return fail(EXIT_USAGE, "too many arguments: compare takes two image files");
    }
  }
  if (files < 2)
    return fail(EXIT_USAGE, "compare needs two image files (see ssim --help)");
  if (args->gradient_prefix != NULL && !args->gradient_given)
    args->options.gradient = SSIMD_GRADIENT_BOTH;
  if (args->options.gradient != SSIMD_GRADIENT_NONE && args->gradient_prefix == NULL && !args->json)
    return fail(EXIT_USAGE, "--gradient needs --gradient-out PREFIX or --json");
  return EXIT_OK;
}

/* Read and decode one file; returns EXIT_OK or the failure's exit code (message printed). */
static int load_image(const char *path, struct ssimd_image *image) {
  gchar *contents = NULL;
  gsize length = 0;
  GError *error = NULL;
  if (!g_file_get_contents(path, &contents, &length, &error)) {
    int code = fail(EXIT_UNREADABLE, "%s", error->message);
    g_error_free(error);
    return code;
  }
  char detail[DETAIL_MAX] = "";
  int status = ssimd_decode(contents, length, TOOL_MAX_PIXELS, image, detail, sizeof(detail));
  g_free(contents);
  switch (status) {
  case SSIMD_DECODE_OK:
    return EXIT_OK;
  case SSIMD_DECODE_EFORMAT:
    return fail(EXIT_FORMAT, "%s: %s", path, detail);
  case SSIMD_DECODE_ENOMEM:
    return fail(EXIT_COMPUTE, "%s: %s", path, detail);
  default:
    return fail(EXIT_CORRUPT, "%s: %s", path, detail);
  }
}

/* Check the pair and bring it to one layout; returns EXIT_OK or the failure's exit code. */
static int prepare_pair(const struct compare_args *args, struct ssimd_image images[2]) {
  /* Size and colour mismatches share one decode status; they get distinct exit codes. */
  if (images[0].width != images[1].width || images[0].height != images[1].height)
    return fail(EXIT_SIZE_MISMATCH, "%s is %zux%zu but %s is %zux%zu; they must be the same size",
                args->files[0], images[0].width, images[0].height, args->files[1], images[1].width,
                images[1].height);
  if (args->options.color == SSIMD_COLOR_RGB && images[0].channels != images[1].channels)
    return fail(EXIT_COLOUR_MISMATCH, "%s is %s but %s is %s; use --color luma to compare them",
                args->files[0], images[0].channels == 1 ? "grey" : "colour", args->files[1],
                images[1].channels == 1 ? "grey" : "colour");
  char detail[DETAIL_MAX] = "";
  int status = ssimd_image_pair_prepare(&images[0], &images[1], args->options.color,
                                        args->options.padding, detail, sizeof(detail));
  switch (status) {
  case SSIMD_DECODE_OK:
    return EXIT_OK;
  case SSIMD_DECODE_ETOOSMALL:
    return fail(EXIT_TOO_SMALL, "%s", detail);
  case SSIMD_DECODE_EMISMATCH:
    return fail(EXIT_SIZE_MISMATCH, "%s", detail);
  default:
    return fail(EXIT_COMPUTE, "%s", detail);
  }
}

/* What one engine call produces; buffers malloc'ed here and freed by outputs_free. */
struct outputs {
  double score;
  double *channel_scores;
  float *map;
  float *block_means;
  float *grad[2];
  size_t map_height, map_width;
};

static void outputs_free(struct outputs *out) {
  free(out->channel_scores);
  free(out->map);
  free(out->block_means);
  free(out->grad[0]);
  free(out->grad[1]);
}

/* Write `png` (g_malloc'ed, freed here) to `path`; returns EXIT_OK or EXIT_WRITE. */
static int write_png(const char *path, void *png, size_t len) {
  char detail[DETAIL_MAX] = "";
  int rc = ssimd_write_file(path, png, len, detail, sizeof(detail));
  g_free(png);
  return rc == 0 ? EXIT_OK : fail(EXIT_WRITE, "%s", detail);
}

static int write_outputs(const struct compare_args *args, const struct ssimd_image *image,
                         const struct outputs *out) {
  char detail[DETAIL_MAX] = "";
  void *png = NULL;
  size_t len = 0;
  if (args->map_path != NULL) {
    if (ssimd_render_map_png(out->map, image->channels, out->map_height, out->map_width, &png, &len,
                             detail, sizeof(detail)) != 0)
      return fail(EXIT_WRITE, "the map: %s", detail);
    int code = write_png(args->map_path, png, len);
    if (code != EXIT_OK)
      return code;
  }
  for (int i = 0; i < 2 && args->gradient_prefix != NULL; i++) {
    if (out->grad[i] == NULL)
      continue;
    if (ssimd_render_gradient_png(out->grad[i], image->channels, image->height, image->width, &png,
                                  &len, detail, sizeof(detail)) != 0)
      return fail(EXIT_WRITE, "the gradient: %s", detail);
    char *path = g_strdup_printf("%s-img%d.png", args->gradient_prefix, i + 1);
    int code = write_png(path, png, len);
    g_free(path);
    if (code != EXIT_OK)
      return code;
  }
  return EXIT_OK;
}

/* Print the plain-text answer. */
static void print_text(const struct compare_args *args, const struct ssimd_image *image,
                       const struct outputs *out, const struct ssimd_worst_block *worst) {
  printf("ssim %.6f\n", out->score);
  printf("channels");
  for (size_t c = 0; c < image->channels; c++)
    printf(" %.6f", out->channel_scores[c]);
  printf("\n");
  printf("worst x=%zu y=%zu w=%zu h=%zu ssim=%.6f\n", worst->x, worst->y, worst->w, worst->h,
         worst->ssim);
  if (args->options.has_threshold)
    printf("pass %s\n", out->score >= args->options.threshold ? "true" : "false");
}

static int print_json(const struct compare_args *args, const struct ssimd_image *image,
                      const struct outputs *out, const struct ssimd_worst_block *worst,
                      const char *backend, const struct ssimd_timing *timing) {
  struct ssimd_result result = {
      .ssim = out->score,
      .channel_scores = out->channel_scores,
      .width = image->width,
      .height = image->height,
      .channels = image->channels,
      .options = &args->options,
      .backend = backend,
      .timing = timing,
      .map = out->map,
      .map_height = out->map_height,
      .map_width = out->map_width,
      .grad_img1 = out->grad[0],
      .grad_img2 = out->grad[1],
      .worst = *worst,
  };
  char detail[DETAIL_MAX] = "";
  json_t *answer = ssimd_response_encode(&result, detail, sizeof(detail));
  if (answer == NULL)
    return fail(EXIT_COMPUTE, "the JSON answer: %s", detail);
  /* Ten significant digits: more than float32 maps carry, and readable. */
  int rc = json_dumpf(answer, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
  json_decref(answer);
  if (rc != 0 || fputc('\n', stdout) == EOF)
    return fail(EXIT_WRITE, "cannot write the answer to stdout");
  return EXIT_OK;
}

/* Allocate n elements of `size` bytes, or NULL (n = 0 gives NULL too: not asked for). */
static void *alloc_array(size_t n, size_t size) {
  return n == 0 ? NULL : calloc(n, size);
}

static int run_compare(const struct compare_args *args) {
  int64_t start = g_get_monotonic_time();
  struct ssimd_image images[2] = {{0}, {0}};
  int code = load_image(args->files[0], &images[0]);
  if (code == EXIT_OK)
    code = load_image(args->files[1], &images[1]);
  if (code == EXIT_OK)
    code = prepare_pair(args, images);
  if (code != EXIT_OK) {
    ssimd_image_clear(&images[0]);
    ssimd_image_clear(&images[1]);
    return code;
  }
  int64_t decoded = g_get_monotonic_time();

  const struct ssimd_image *image = &images[0];
  struct outputs out = {0};
  ssim_map_size(image->height, image->width, args->options.padding, &out.map_height,
                &out.map_width);
  size_t channels = image->channels;
  size_t plane = image->height * image->width;
  size_t map_plane = out.map_height * out.map_width;
  size_t blocks = ((out.map_height + SSIM_BLOCK - 1) / SSIM_BLOCK) *
                  ((out.map_width + SSIM_BLOCK - 1) / SSIM_BLOCK);
  int want_map = args->map_path != NULL || (args->json && args->options.map != SSIMD_OUTPUT_NONE);
  out.channel_scores = alloc_array(channels, sizeof(double));
  out.block_means = alloc_array(blocks, sizeof(float));
  out.map = alloc_array(want_map ? channels * map_plane : 0, sizeof(float));
  for (int i = 0; i < 2; i++) {
    int asked = (args->options.gradient & (i == 0 ? SSIMD_GRADIENT_IMG1 : SSIMD_GRADIENT_IMG2));
    out.grad[i] = alloc_array(asked ? channels * plane : 0, sizeof(float));
  }
  if (out.channel_scores == NULL || out.block_means == NULL || (want_map && out.map == NULL) ||
      ((args->options.gradient & SSIMD_GRADIENT_IMG1) && out.grad[0] == NULL) ||
      ((args->options.gradient & SSIMD_GRADIENT_IMG2) && out.grad[1] == NULL)) {
    code = fail(EXIT_COMPUTE, "out of memory for the results");
    goto done;
  }

  ssim_engine_t *engine = NULL;
  char detail[DETAIL_MAX] = "";
  int rc = ssim_engine_create(&args->engine, &engine, detail, sizeof(detail));
  if (rc != 0) {
    code = fail(rc == SSIM_EINVAL ? EXIT_USAGE : EXIT_COMPUTE, "backend %s: %s%s%s",
                args->engine.backend, ssim_strerror(rc), detail[0] != '\0' ? ": " : "", detail);
    goto done;
  }
  struct ssim_inputs in = {
      .shape = {.batch = 1, .channels = channels, .height = image->height, .width = image->width},
      .dtype = image->dtype,
      .padding = args->options.padding,
      .memory = SSIM_MEMORY_HOST,
      .img1 = images[0].pixels,
      .img2 = images[1].pixels,
  };
  struct ssim_outputs engine_out = {
      .scores = &out.score,
      .channel_scores = out.channel_scores,
      .map = out.map,
      .block_means = out.block_means,
      .grad_img1 = out.grad[0],
      .grad_img2 = out.grad[1],
  };
  rc = ssim_compute(engine, &in, &engine_out);
  if (rc != 0) {
    code = fail(EXIT_COMPUTE, "%s", ssim_engine_last_error(engine));
    ssim_engine_destroy(engine);
    goto done;
  }
  int64_t computed = g_get_monotonic_time();

  struct ssimd_worst_block worst;
  ssimd_worst_block_find(out.block_means, out.map_height, out.map_width, args->options.padding,
                         &worst);
  code = write_outputs(args, image, &out);
  if (code == EXIT_OK) {
    if (args->json) {
      struct ssimd_timing timing = {
          .decode = (double)(decoded - start) / 1000.0,
          .queue = 0.0,
          .compute = (double)(computed - decoded) / 1000.0,
          .total = (double)(g_get_monotonic_time() - start) / 1000.0,
      };
      code = print_json(args, image, &out, &worst, ssim_engine_backend_name(engine), &timing);
    } else {
      print_text(args, image, &out, &worst);
    }
  }
  if (code == EXIT_OK && args->options.has_threshold && !(out.score >= args->options.threshold))
    code = EXIT_BELOW_THRESHOLD;
  ssim_engine_destroy(engine);

done:
  outputs_free(&out);
  ssimd_image_clear(&images[0]);
  ssimd_image_clear(&images[1]);
  return code;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("ssim %s\n", SSIM_VERSION);
    return EXIT_OK;
  }
  if (strcmp(argv[1], "compare") != 0)
    return fail(EXIT_USAGE, "unknown command %s (see ssim --help)", argv[1]);

  struct compare_args args;
  int code = parse_compare(argc - 2, argv + 2, &args);
  if (code != EXIT_OK)
    return code;
  char detail[DETAIL_MAX] = "";
  if (ssimd_decode_init(argv[0], detail, sizeof(detail)) != 0)
    return fail(EXIT_COMPUTE, "%s", detail);
  code = run_compare(&args);
  if (fflush(stdout) != 0 && code == EXIT_OK)
    code = fail(EXIT_WRITE, "cannot write to stdout");
  ssimd_decode_shutdown();
  return code;
}
