/*
 * cpu_backend.c: the CPU backend's vtable: state, device name, and the compute and backward
 * slots, which cut a request into strip tasks (cpu_plane.c), run them on the pool (cpu_pool.c)
 * and reduce the per-row sums into scores in a fixed order.
 *
 * Results are bitwise the same for any thread count: each map, gradient and row-sum element is
 * computed by one task with operations that do not depend on how rows were split, and the
 * reductions below run on the calling thread in index order.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_plane.h"
#include "cpu_pool.h"
#include "cpu_rows.h"

#define DEVICE_NAME_MAX 192
/* Tasks per worker the planner aims at, so that unequal tasks still balance. */
#define TASKS_PER_WORKER 2
/* Fewest map rows per strip: below this the recomputed halo rows cost more than balance gains. */
#define MIN_STRIP_ROWS (2 * SSIM_BLOCK)

struct cpu_state {
  struct ssim__cpu_pool *pool;
  unsigned workers;
  struct ssim__cpu_workspace *workspaces; /* one per worker */
  /* Per-call reductions, grown as needed and kept. */
  double *row_sums;
  size_t row_sums_capacity;
  double *block_sums;
  size_t block_sums_capacity;
  char device_name[DEVICE_NAME_MAX];
};

/* Removes every occurrence of `word` from `s` in place. */
static void erase_word(char *s, const char *word) {
  size_t len = strlen(word);
  char *hit;
  while ((hit = strstr(s, word)) != NULL)
    memmove(hit, hit + len, strlen(hit + len) + 1);
}

/* The "model name" of /proc/cpuinfo without trademark marks and doubled spaces, or "cpu". */
static void cpu_model_name(char *out, size_t out_size) {
  snprintf(out, out_size, "cpu");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  char line[512];
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "model name", 10) != 0)
      continue;
    char *value = strchr(line, ':');
    if (value == NULL)
      continue;
    value++;
    erase_word(value, "(R)");
    erase_word(value, "(TM)");
    /* Collapse runs of white space and trim both ends. */
    char *w = value;
    int pending_space = 0;
    for (char *r = value; *r != '\0'; r++) {
      if (isspace((unsigned char)*r)) {
        pending_space = w != value;
        continue;
      }
      if (pending_space)
        *w++ = ' ';
      pending_space = 0;
      *w++ = *r;
    }
    *w = '\0';
    if (value[0] != '\0')
      snprintf(out, out_size, "%s", value);
    break;
  }
  fclose(f);
}

static void cpu_destroy(void *state) {
  struct cpu_state *cpu = state;
  if (cpu == NULL)
    return;
  ssim__cpu_pool_destroy(cpu->pool);
  if (cpu->workspaces != NULL)
    for (unsigned i = 0; i < cpu->workers; i++)
      ssim__cpu_workspace_release(&cpu->workspaces[i]);
  free(cpu->workspaces);
  free(cpu->row_sums);
  free(cpu->block_sums);
  free(cpu);
}

static int cpu_create(const struct ssim_engine_options *opts, void **state, char *detail) {
  *state = NULL;
  unsigned workers = 1;
  if (opts->threads > 0) {
    workers = (unsigned)opts->threads;
  } else {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    workers = online > 0 ? (unsigned)online : 1;
  }
  struct cpu_state *cpu = calloc(1, sizeof(*cpu));
  if (cpu == NULL) {
    snprintf(detail, SSIM__DETAIL_MAX, "cannot allocate the CPU backend's state");
    return SSIM_ENOMEM;
  }
  cpu->workers = workers;
  cpu->workspaces = calloc(workers, sizeof(*cpu->workspaces));
  if (cpu->workspaces == NULL) {
    snprintf(detail, SSIM__DETAIL_MAX, "cannot allocate scratch space for %u workers", workers);
    cpu_destroy(cpu);
    return SSIM_ENOMEM;
  }
  int err = ssim__cpu_pool_create(workers, &cpu->pool, detail);
  if (err != 0) {
    cpu_destroy(cpu);
    return err;
  }
  char model[DEVICE_NAME_MAX - 32];
  cpu_model_name(model, sizeof(model));
  snprintf(cpu->device_name, sizeof(cpu->device_name), "%s (%u thread%s)", model, workers,
           workers == 1 ? "" : "s");
  *state = cpu;
  return 0;
}

static const char *cpu_device_name(void *state) {
  return ((struct cpu_state *)state)->device_name;
}

/* Grow *buffer to hold `count` doubles. */
static int reserve_doubles(double **buffer, size_t *capacity, size_t count, char *detail) {
  if (count <= *capacity)
    return 0;
  double *grown = count <= SIZE_MAX / sizeof(double) ? malloc(count * sizeof(double)) : NULL;
  if (grown == NULL) {
    snprintf(detail, SSIM__DETAIL_MAX, "cannot allocate %zu partial sums", count);
    return SSIM_ENOMEM;
  }
  free(*buffer);
  *buffer = grown;
  *capacity = count;
  return 0;
}

/*
 * Map rows per strip. One strip per plane when the planes alone keep every worker busy;
 * otherwise planes are cut so that the task count is a multiple of the worker count (about
 * TASKS_PER_WORKER each), since a lone last task would leave the other workers idle.
 */
static size_t plan_strip_rows(size_t planes, size_t map_height, unsigned workers) {
  size_t whole = (map_height + SSIM_BLOCK - 1) / SSIM_BLOCK * SSIM_BLOCK;
  if (workers <= 1 || planes >= (size_t)4 * TASKS_PER_WORKER * workers)
    return whole;
  size_t wanted = (size_t)TASKS_PER_WORKER * workers;
  size_t strips = (wanted + planes - 1) / planes;
  for (size_t tries = 0; tries < workers && (planes * strips) % workers != 0; tries++)
    strips++;
  size_t rows = (map_height + strips - 1) / strips;
  rows = (rows + SSIM_BLOCK - 1) / SSIM_BLOCK * SSIM_BLOCK;
  if (rows < MIN_STRIP_ROWS)
    rows = MIN_STRIP_ROWS;
  return rows < whole ? rows : whole;
}

/* Fills the geometry of `job` and makes every buffer it needs; the caller sets the outputs. */
static int job_setup(struct cpu_state *cpu, const struct ssim_inputs *in, int want_sums,
                     int want_blocks, struct ssim__cpu_job *job, char *detail) {
  const struct ssim_shape *shape = &in->shape;
  memset(job, 0, sizeof(*job));
  job->planes = shape->batch * shape->channels;
  job->height = shape->height;
  job->width = shape->width;
  job->offset = in->padding == SSIM_PADDING_VALID ? SSIM_HALO : 0;
  job->map_height = job->height - 2 * job->offset;
  job->map_width = job->width - 2 * job->offset;
  job->blocks_x = (job->map_width + SSIM_BLOCK - 1) / SSIM_BLOCK;
  job->blocks_y = (job->map_height + SSIM_BLOCK - 1) / SSIM_BLOCK;
  job->strip_rows = plan_strip_rows(job->planes, job->map_height, cpu->workers);
  job->strips_per_plane = (job->map_height + job->strip_rows - 1) / job->strip_rows;
  /* Centring pays where windows lie mostly inside the image; in a narrower image the zero
   * padding, which centring turns into -c, would dominate the statistics instead. */
  job->center = job->height >= SSIM_WINDOW && job->width >= SSIM_WINDOW ? SSIM__CPU_CENTER : 0.0f;
  job->dtype = in->dtype;
  job->img1 = in->img1;
  job->img2 = in->img2;
  job->workspaces = cpu->workspaces;

  /* Any worker may claim any task, so every workspace needs rows of this width. */
  for (unsigned i = 0; i < cpu->workers; i++) {
    int err = ssim__cpu_workspace_reserve(&cpu->workspaces[i], job->width, detail);
    if (err != 0)
      return err;
    cpu->workspaces[i].nonfinite = 0;
  }
  if (want_sums) {
    int err = reserve_doubles(&cpu->row_sums, &cpu->row_sums_capacity,
                              job->planes * job->map_height, detail);
    if (err != 0)
      return err;
    job->row_sums = cpu->row_sums;
  }
  if (want_blocks) {
    size_t count = job->planes * job->blocks_y * job->blocks_x;
    int err = reserve_doubles(&cpu->block_sums, &cpu->block_sums_capacity, count, detail);
    if (err != 0)
      return err;
    memset(cpu->block_sums, 0, count * sizeof(double));
    job->block_sums = cpu->block_sums;
  }
  return 0;
}

/* Runs the job; SSIM_ENONFINITE when a task met NaN or infinity in the input. */
static int job_run(struct cpu_state *cpu, struct ssim__cpu_job *job, char *detail) {
  ssim__cpu_pool_run(cpu->pool, job->planes * job->strips_per_plane, ssim__cpu_job_task, job);
  unsigned nonfinite = 0;
  for (unsigned i = 0; i < cpu->workers; i++)
    nonfinite |= cpu->workspaces[i].nonfinite;
  if (nonfinite == 0)
    return 0;
  snprintf(detail, SSIM__DETAIL_MAX, "the input holds NaN or infinity (in %s)",
           nonfinite == 3u   ? "img1 and img2"
           : nonfinite == 1u ? "img1"
                             : "img2");
  return SSIM_ENONFINITE;
}

/* Scores, channel scores and block means from the per-row and per-block sums, in index order. */
static void job_reduce(const struct ssim__cpu_job *job, size_t channels,
                       const struct ssim_outputs *out) {
  size_t batch = job->planes / channels;
  double map_pixels = (double)job->map_height * (double)job->map_width;
  for (size_t n = 0; n < batch; n++) {
    double total = 0.0;
    for (size_t c = 0; c < channels; c++) {
      const double *rows = job->row_sums + (n * channels + c) * job->map_height;
      double sum = 0.0;
      for (size_t m = 0; m < job->map_height; m++)
        sum += rows[m];
      if (out->channel_scores != NULL)
        out->channel_scores[n * channels + c] = sum / map_pixels;
      total += sum;
    }
    out->scores[n] = total / (map_pixels * (double)channels);
  }
  if (out->block_means == NULL)
    return;
  size_t blocks = job->blocks_y * job->blocks_x;
  for (size_t n = 0; n < batch; n++)
    for (size_t by = 0; by < job->blocks_y; by++) {
      size_t h = job->map_height - by * SSIM_BLOCK;
      h = h < SSIM_BLOCK ? h : SSIM_BLOCK;
      for (size_t bx = 0; bx < job->blocks_x; bx++) {
        size_t w = job->map_width - bx * SSIM_BLOCK;
        w = w < SSIM_BLOCK ? w : SSIM_BLOCK;
        double sum = 0.0;
        for (size_t c = 0; c < channels; c++)
          sum += job->block_sums[(n * channels + c) * blocks + by * job->blocks_x + bx];
        out->block_means[n * blocks + by * job->blocks_x + bx] =
            (float)(sum / ((double)h * (double)w * (double)channels));
      }
    }
}

/* Host and "device" memory are the same thing to this backend, so both are accepted. */
static int cpu_compute(void *state, const struct ssim_inputs *in, const struct ssim_outputs *out,
                       char *detail) {
  struct cpu_state *cpu = state;
  struct ssim__cpu_job job;
  int err = job_setup(cpu, in, 1, out->block_means != NULL, &job, detail);
  if (err != 0)
    return err;
  job.map = out->map;
  job.grad1 = out->grad_img1;
  job.grad2 = out->grad_img2;
  /* The score is the mean over channels x map pixels, so each map pixel's upstream gradient is
   * one over that count. */
  job.grad_constant =
      (float)(1.0 / ((double)in->shape.channels * (double)job.map_height * (double)job.map_width));
  err = job_run(cpu, &job, detail);
  if (err != 0)
    return err;
  job_reduce(&job, in->shape.channels, out);
  return 0;
}

static int cpu_backward(void *state, const struct ssim_inputs *in, const float *grad_map,
                        float *grad_img1, float *grad_img2, char *detail) {
  struct cpu_state *cpu = state;
  struct ssim__cpu_job job;
  int err = job_setup(cpu, in, 0, 0, &job, detail);
  if (err != 0)
    return err;
  job.grad_map = grad_map;
  job.grad1 = grad_img1;
  job.grad2 = grad_img2;
  return job_run(cpu, &job, detail);
}

/** The CPU backend: fused streaming SSIM over strips of rows on a persistent thread pool. */
const struct ssim__backend ssim__backend_cpu = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_name = cpu_device_name,
    .compute = cpu_compute,
    .backward = cpu_backward,
};
