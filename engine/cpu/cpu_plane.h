/*
 * cpu_plane.h: the fused streaming pass of the CPU backend over one strip of one image plane.
 * Private to engine/cpu/.
 *
 * A job is a validated engine request cut into tasks: task t covers plane t / strips_per_plane
 * (pair n, channel c of an NCHW batch) and the strip t % strips_per_plane of its map rows. Rows
 * stream through rings of SSIM_WINDOW rows; the rows a strip needs beyond its own (the halo) are
 * recomputed, by the same operations, so every output element has the same bits whatever the
 * strips. Strips hold a whole number of SSIM_BLOCK map rows, so each block of the map belongs to
 * exactly one task.
 */
#ifndef SSIM_CPU_PLANE_H
#define SSIM_CPU_PLANE_H

#include <stddef.h>

#include "ssim.h"

/* Rows of a ring: the window's height. */
#define SSIM__CPU_RING SSIM_WINDOW
/* The five blurred statistics: mu1, mu2, G*(x*x), G*(y*y), G*(x*y). */
#define SSIM__CPU_STATS 5
/* The partial-derivative planes: P1, P2, Ps, P12. */
#define SSIM__CPU_PARTIALS 4

/* Scratch rows of one worker, reused across calls. Owned by the backend state; used by one
 * worker at a time. Padded rows point at their first zero (column -SSIM__CPU_PAD). */
struct ssim__cpu_workspace {
  size_t capacity; /* widest row the buffers hold, in pixels (0: nothing allocated) */
  float *arena;    /* every row below, in one aligned allocation */
  double *block_partials;
  const float *zero; /* capacity zeros: the partials of every row outside the image */
  float *x[SSIM__CPU_RING], *y[SSIM__CPU_RING]; /* input rows, slot = row % ring */
  /* Padded centred values x' = x - c, y' = y - c and their products x'x', y'y', x'y' of the
   * newest input row; their pads hold what the image is outside (x = 0): -c and c^2. */
  float *xs, *ys, *xx, *yy, *xy;
  float *hstat[SSIM__CPU_STATS][SSIM__CPU_RING]; /* horizontally blurred statistics */
  /* The horizontal blur of a row outside the image, of x' (-c everywhere) and of the products
   * (c^2 everywhere): what the statistics ring holds for rows beyond the top and bottom. */
  float *outside_mean, *outside_product;
  float *stat[SSIM__CPU_STATS];                     /* one row of fully blurred statistics */
  float *ssim;                                      /* one row of the same-padded map */
  float *upstream;                                  /* dL/dmap on the image's columns */
  float *partial[SSIM__CPU_PARTIALS];               /* padded P rows */
  float *hpart[SSIM__CPU_PARTIALS][SSIM__CPU_RING]; /* their horizontal blur */
  float *vpart[SSIM__CPU_PARTIALS];                 /* their full blur, one gradient row */
  /* Set by tasks: bit 0 when img1 held NaN or infinity, bit 1 for img2. */
  unsigned nonfinite;
};

/* A request cut into tasks. Read-only to the tasks but for the outputs, of which each task
 * writes its own disjoint part. */
struct ssim__cpu_job {
  size_t planes; /* batch * channels */
  size_t height, width;
  size_t map_height, map_width;
  size_t offset;     /* 0 for padding=same, SSIM_HALO for valid: map (m, k) = same-map (m+o, k+o) */
  size_t strip_rows; /* map rows per strip, a multiple of SSIM_BLOCK */
  size_t strips_per_plane; /* ceil(map_height / strip_rows) */
  size_t blocks_x, blocks_y;
  float center; /* what the statistics are centred on (see ssim__cpu_row_centered) */
  ssim_dtype dtype;
  const void *img1, *img2;
  /* Forward outputs: row_sums (planes * map_height, the double sum of each map row) is NULL in
   * backward mode; map and block_sums (planes * blocks_y * blocks_x, zeroed by the caller) are
   * NULL when not wanted. */
  float *map;
  double *row_sums;
  double *block_sums;
  /* Gradients, NULL when not wanted. The upstream gradient is grad_map (map coordinates) when
   * not NULL, else grad_constant on every map pixel. */
  float *grad1, *grad2;
  const float *grad_map;
  float grad_constant;
  struct ssim__cpu_workspace *workspaces; /* one per worker */
};

/** Make `ws` hold rows of `width` pixels (growing only). Returns 0 or SSIM_ENOMEM with a
 * sentence in `detail` (SSIM__DETAIL_MAX bytes); on failure the old buffers are kept. */
int ssim__cpu_workspace_reserve(struct ssim__cpu_workspace *ws, size_t width, char *detail);

/** Free a workspace's buffers and zero it. */
void ssim__cpu_workspace_release(struct ssim__cpu_workspace *ws);

/** Run task `task` of the job `context` (a struct ssim__cpu_job) with the scratch rows of
 * worker `worker`; a ssim__cpu_task_fn. */
void ssim__cpu_job_task(void *context, size_t task, unsigned worker);

#endif /* SSIM_CPU_PLANE_H */
