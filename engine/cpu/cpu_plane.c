/*
 * cpu_plane.c: the fused streaming pass over one strip of one image plane (see cpu_plane.h).
 *
 * Time runs over input rows t. At step t:
 *   1. input row t is converted to float, centred (x' = x - c, see SSIM__CPU_CENTER), squared
 *      and multiplied, and blurred horizontally into the statistics ring (slot t % 11);
 *   2. statistics row s = t - 5, whose window is input rows s-5 .. s+5, is blurred vertically;
 *      from it come the map row (copied out, summed per block and per row) and, when gradients
 *      are wanted, the rows of partials P, blurred horizontally into the partials ring;
 *   3. gradient row r = t - 10, whose window is partial rows r-5 .. r+5, is blurred vertically
 *      and combined with input row r (still in the input ring, which is why that ring is as deep
 *      as the window) into dL/dimg1 and dL/dimg2.
 * A slot is overwritten 11 steps after it was written, when no window needs it any more. Rows
 * outside the image are what zero padding makes of them: the blur of a row of x' = -c for the
 * means, of c^2 for the products, and zeros for the partials. Nothing of full image size is
 * ever allocated.
 */
#include "cpu_plane.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu_rows.h"

/* Rows start on 64-byte boundaries: a stride is a multiple of 16 floats. */
#define ROW_ALIGN_FLOATS 16
#define ROW_ALIGN_BYTES (ROW_ALIGN_FLOATS * sizeof(float))

/* The arena's rows: zero, input rings, centred values and products, statistics ring, the two
 * rows outside the image, statistics, map, upstream, partials, partials ring, blurred partials. */
#define ARENA_ROWS                                                                                 \
  (1 + 2 * SSIM__CPU_RING + 5 + SSIM__CPU_STATS * SSIM__CPU_RING + 2 + SSIM__CPU_STATS + 2 +       \
   SSIM__CPU_PARTIALS + SSIM__CPU_PARTIALS * SSIM__CPU_RING + SSIM__CPU_PARTIALS)

/* Indices of the planes of partials. */
enum { PART_1 = 0, PART_2 = 1, PART_S = 2, PART_12 = 3 };

int ssim__cpu_workspace_reserve(struct ssim__cpu_workspace *ws, size_t width, char *detail) {
  if (width <= ws->capacity)
    return 0;
  size_t stride = width + 2 * SSIM__CPU_PAD;
  stride = (stride + ROW_ALIGN_FLOATS - 1) / ROW_ALIGN_FLOATS * ROW_ALIGN_FLOATS;
  size_t blocks = (width + SSIM_BLOCK - 1) / SSIM_BLOCK;
  float *arena = NULL;
  double *block_partials = NULL;
  if (stride <= SIZE_MAX / sizeof(float) / ARENA_ROWS) {
    arena = aligned_alloc(ROW_ALIGN_BYTES, ARENA_ROWS * stride * sizeof(float));
    block_partials = malloc(blocks * sizeof(double));
  }
  if (arena == NULL || block_partials == NULL) {
    free(arena);
    free(block_partials);
    snprintf(detail, SSIM__DETAIL_MAX, "cannot allocate scratch rows for images %zu pixels wide",
             width);
    return SSIM_ENOMEM;
  }
  /* The zero row is never written afterwards; every other pad is set when a task starts. */
  memset(arena, 0, ARENA_ROWS * stride * sizeof(float));
  ssim__cpu_workspace_release(ws);

  float *next = arena;
#define TAKE_ROW() (next += stride, next - stride)
  ws->zero = TAKE_ROW();
  for (size_t i = 0; i < SSIM__CPU_RING; i++) {
    ws->x[i] = TAKE_ROW();
    ws->y[i] = TAKE_ROW();
  }
  ws->xs = TAKE_ROW();
  ws->ys = TAKE_ROW();
  ws->xx = TAKE_ROW();
  ws->yy = TAKE_ROW();
  ws->xy = TAKE_ROW();
  ws->outside_mean = TAKE_ROW();
  ws->outside_product = TAKE_ROW();
  for (size_t k = 0; k < SSIM__CPU_STATS; k++) {
    for (size_t i = 0; i < SSIM__CPU_RING; i++)
      ws->hstat[k][i] = TAKE_ROW();
    ws->stat[k] = TAKE_ROW();
  }
  ws->ssim = TAKE_ROW();
  ws->upstream = TAKE_ROW();
  for (size_t k = 0; k < SSIM__CPU_PARTIALS; k++) {
    ws->partial[k] = TAKE_ROW();
    for (size_t i = 0; i < SSIM__CPU_RING; i++)
      ws->hpart[k][i] = TAKE_ROW();
    ws->vpart[k] = TAKE_ROW();
  }
#undef TAKE_ROW
  ws->arena = arena;
  ws->block_partials = block_partials;
  ws->capacity = width;
  return 0;
}

void ssim__cpu_workspace_release(struct ssim__cpu_workspace *ws) {
  free(ws->arena);
  free(ws->block_partials);
  memset(ws, 0, sizeof(*ws));
}

/* The rows of one task, in image row coordinates, each range half-open. */
struct strip_rows {
  ptrdiff_t out_lo, out_hi;   /* statistics rows whose map row this task writes */
  ptrdiff_t stat_lo, stat_hi; /* statistics rows it computes (its own plus halo) */
  ptrdiff_t map_lo, map_hi;   /* statistics rows that are in the map: partials are 0 elsewhere */
  ptrdiff_t in_lo, in_hi;     /* input rows it loads */
  ptrdiff_t grad_lo, grad_hi; /* gradient rows it writes; empty without gradients */
  ptrdiff_t end;              /* one past the last step */
};

/* One running task: the job, the worker's scratch rows, and where its plane lies. */
struct plane_task {
  const struct ssim__cpu_job *job;
  struct ssim__cpu_workspace *ws;
  struct strip_rows rows;
  size_t plane;
  size_t width;
  int want_grad;
  const unsigned char *img1, *img2; /* the plane's first element */
  size_t elem_size;
};

static ptrdiff_t max_row(ptrdiff_t a, ptrdiff_t b) {
  return a > b ? a : b;
}

static ptrdiff_t min_row(ptrdiff_t a, ptrdiff_t b) {
  return a < b ? a : b;
}

static struct strip_rows strip_rows_of(const struct ssim__cpu_job *job, size_t strip,
                                       int want_grad) {
  struct strip_rows r;
  ptrdiff_t height = (ptrdiff_t)job->height, offset = (ptrdiff_t)job->offset;
  ptrdiff_t map_first = (ptrdiff_t)(strip * job->strip_rows);
  ptrdiff_t map_end = min_row((ptrdiff_t)job->map_height, map_first + (ptrdiff_t)job->strip_rows);
  r.out_lo = map_first + offset;
  r.out_hi = map_end + offset;
  r.map_lo = offset;
  r.map_hi = height - offset;
  if (want_grad) {
    /* Gradient rows follow the map's strips; the first and last strips also take the image
     * rows that padding=valid leaves outside the map. Each needs partials 5 rows either way. */
    r.grad_lo = strip == 0 ? 0 : r.out_lo;
    r.grad_hi = strip + 1 == job->strips_per_plane ? height : r.out_hi;
    r.stat_lo = max_row(r.map_lo, r.grad_lo - SSIM_HALO);
    r.stat_hi = min_row(r.map_hi, r.grad_hi + SSIM_HALO);
    r.end = r.grad_hi + 2 * SSIM_HALO;
  } else {
    r.grad_lo = r.grad_hi = 0;
    r.stat_lo = r.out_lo;
    r.stat_hi = r.out_hi;
    r.end = r.stat_hi + SSIM_HALO;
  }
  r.in_lo = max_row(0, r.stat_lo - SSIM_HALO);
  r.in_hi = min_row(height, r.stat_hi + SSIM_HALO);
  return r;
}

/* Step 1: convert input row t of both images, form the products, blur them horizontally. */
static void load_input_row(struct plane_task *task, ptrdiff_t t) {
  struct ssim__cpu_workspace *ws = task->ws;
  size_t width = task->width, slot = (size_t)t % SSIM__CPU_RING;
  size_t byte_offset = (size_t)t * width * task->elem_size;
  const void *src1 = task->img1 + byte_offset, *src2 = task->img2 + byte_offset;
  float *x = ws->x[slot] + SSIM__CPU_PAD, *y = ws->y[slot] + SSIM__CPU_PAD;
  switch (task->job->dtype) {
  case SSIM_DTYPE_U8:
    ssim__cpu_row_from_u8(src1, width, x);
    ssim__cpu_row_from_u8(src2, width, y);
    break;
  case SSIM_DTYPE_U16:
    ssim__cpu_row_from_u16(src1, width, x);
    ssim__cpu_row_from_u16(src2, width, y);
    break;
  case SSIM_DTYPE_F32:
    if (ssim__cpu_row_from_f32(src1, width, x))
      ws->nonfinite |= 1u;
    if (ssim__cpu_row_from_f32(src2, width, y))
      ws->nonfinite |= 2u;
    break;
  }
  ssim__cpu_row_centered(x, y, task->job->center, width, ws->xs + SSIM__CPU_PAD,
                         ws->ys + SSIM__CPU_PAD, ws->xx + SSIM__CPU_PAD, ws->yy + SSIM__CPU_PAD,
                         ws->xy + SSIM__CPU_PAD);
  ssim__cpu_row_hblur(ws->xs, width, ws->hstat[0][slot]);
  ssim__cpu_row_hblur(ws->ys, width, ws->hstat[1][slot]);
  ssim__cpu_row_hblur(ws->xx, width, ws->hstat[2][slot]);
  ssim__cpu_row_hblur(ws->yy, width, ws->hstat[3][slot]);
  ssim__cpu_row_hblur(ws->xy, width, ws->hstat[4][slot]);
}

/* The eleven rows of a ring around `center`; rows outside [lo, hi) are `outside`. */
static void window_rows(float *const ring[SSIM__CPU_RING], const float *outside, ptrdiff_t center,
                        ptrdiff_t lo, ptrdiff_t hi, const float *rows[SSIM_WINDOW]) {
  for (ptrdiff_t j = 0; j < SSIM_WINDOW; j++) {
    ptrdiff_t row = center - SSIM_HALO + j;
    rows[j] = row >= lo && row < hi ? ring[(size_t)row % SSIM__CPU_RING] : outside;
  }
}

/* dL/dmap of statistics row s on the image's columns (zero outside the map). */
static const float *upstream_row(struct plane_task *task, ptrdiff_t s) {
  const struct ssim__cpu_job *job = task->job;
  if (job->grad_map == NULL)
    return task->ws->upstream; /* the constant row, filled when the task started */
  size_t m = (size_t)s - job->offset;
  const float *src = job->grad_map + (task->plane * job->map_height + m) * job->map_width;
  if (job->offset == 0)
    return src;
  memcpy(task->ws->upstream + job->offset, src, job->map_width * sizeof(float));
  return task->ws->upstream;
}

/* Step 2: statistics row s, its map row, and its partials. */
static void statistics_row(struct plane_task *task, ptrdiff_t s) {
  const struct ssim__cpu_job *job = task->job;
  struct ssim__cpu_workspace *ws = task->ws;
  size_t width = task->width;
  const float *rows[SSIM_WINDOW];
  for (size_t k = 0; k < SSIM__CPU_STATS; k++) {
    const float *outside = k < 2 ? ws->outside_mean : ws->outside_product;
    window_rows(ws->hstat[k], outside, s, 0, (ptrdiff_t)job->height, rows);
    ssim__cpu_row_vblur(rows, width, ws->stat[k]);
  }
  float *const *st = ws->stat;
  if (task->want_grad) {
    const float *g = upstream_row(task, s);
    float *p1 = ws->partial[PART_1] + SSIM__CPU_PAD, *p2 = ws->partial[PART_2] + SSIM__CPU_PAD;
    float *ps = ws->partial[PART_S] + SSIM__CPU_PAD, *p12 = ws->partial[PART_12] + SSIM__CPU_PAD;
    if (job->grad1 != NULL && job->grad2 != NULL)
      ssim__cpu_row_partials2(st[0], st[1], st[2], st[3], st[4], g, job->center, width, ws->ssim,
                              p1, p2, ps, p12);
    else if (job->grad1 != NULL)
      ssim__cpu_row_partials(st[0], st[1], st[2], st[3], st[4], g, job->center, width, ws->ssim, p1,
                             ps, p12);
    else
      ssim__cpu_row_partials(st[1], st[0], st[3], st[2], st[4], g, job->center, width, ws->ssim, p2,
                             ps, p12);
    size_t slot = (size_t)s % SSIM__CPU_RING;
    for (size_t k = 0; k < SSIM__CPU_PARTIALS; k++) {
      if ((k == PART_1 && job->grad1 == NULL) || (k == PART_2 && job->grad2 == NULL))
        continue;
      ssim__cpu_row_hblur(ws->partial[k], width, ws->hpart[k][slot]);
    }
  } else {
    ssim__cpu_row_ssim(st[0], st[1], st[2], st[3], st[4], job->center, width, ws->ssim);
  }

  if (job->row_sums == NULL || s < task->rows.out_lo || s >= task->rows.out_hi)
    return;
  size_t m = (size_t)s - job->offset, map_width = job->map_width;
  const float *map_row = ws->ssim + job->offset;
  if (job->map != NULL)
    memcpy(job->map + (task->plane * job->map_height + m) * map_width, map_row,
           map_width * sizeof(float));
  job->row_sums[task->plane * job->map_height + m] =
      ssim__cpu_row_block_sums(map_row, map_width, ws->block_partials);
  if (job->block_sums != NULL) {
    double *acc = job->block_sums + (task->plane * job->blocks_y + m / SSIM_BLOCK) * job->blocks_x;
    for (size_t bx = 0; bx < job->blocks_x; bx++)
      acc[bx] += ws->block_partials[bx];
  }
}

/* Step 3: gradient row r of the wanted images. */
static void gradient_row(struct plane_task *task, ptrdiff_t r) {
  const struct ssim__cpu_job *job = task->job;
  struct ssim__cpu_workspace *ws = task->ws;
  size_t width = task->width;
  const float *rows[SSIM_WINDOW];
  for (size_t k = 0; k < SSIM__CPU_PARTIALS; k++) {
    if ((k == PART_1 && job->grad1 == NULL) || (k == PART_2 && job->grad2 == NULL))
      continue;
    window_rows(ws->hpart[k], ws->zero, r, task->rows.map_lo, task->rows.map_hi, rows);
    ssim__cpu_row_vblur(rows, width, ws->vpart[k]);
  }
  size_t slot = (size_t)r % SSIM__CPU_RING;
  const float *x = ws->x[slot] + SSIM__CPU_PAD, *y = ws->y[slot] + SSIM__CPU_PAD;
  size_t out = (task->plane * job->height + (size_t)r) * width;
  if (job->grad1 != NULL)
    ssim__cpu_row_gradient(ws->vpart[PART_1], ws->vpart[PART_S], ws->vpart[PART_12], x, y, width,
                           job->grad1 + out);
  if (job->grad2 != NULL)
    ssim__cpu_row_gradient(ws->vpart[PART_2], ws->vpart[PART_S], ws->vpart[PART_12], y, x, width,
                           job->grad2 + out);
}

/* Sets the pads of a padded row of `width` pixels to `value`. */
static void set_pads(float *padded, size_t width, float value) {
  for (size_t i = 0; i < SSIM__CPU_PAD; i++) {
    padded[i] = value;
    padded[SSIM__CPU_PAD + width + i] = value;
  }
}

/* Lays out what a task's rows hold outside the image, at this task's width: a workspace may
 * hold rows of another image from an earlier call. */
static void task_prepare(struct plane_task *task) {
  struct ssim__cpu_workspace *ws = task->ws;
  const struct ssim__cpu_job *job = task->job;
  size_t width = task->width, padded_width = width + 2 * SSIM__CPU_PAD;
  const float mean_outside = -job->center;
  const float product_outside = job->center * job->center;
  /* Rows above and below the image, blurred horizontally by the same kernel as image rows. */
  for (size_t i = 0; i < padded_width; i++) {
    ws->xs[i] = mean_outside;
    ws->xx[i] = product_outside;
  }
  ssim__cpu_row_hblur(ws->xs, width, ws->outside_mean);
  ssim__cpu_row_hblur(ws->xx, width, ws->outside_product);
  set_pads(ws->ys, width, mean_outside);
  set_pads(ws->yy, width, product_outside);
  set_pads(ws->xy, width, product_outside);
  if (!task->want_grad)
    return;
  /* Partials are zero outside the image. */
  for (size_t k = 0; k < SSIM__CPU_PARTIALS; k++)
    set_pads(ws->partial[k], width, 0.0f);
  /* Columns outside padding=valid's map get no upstream gradient. */
  size_t offset = job->offset;
  for (size_t i = 0; i < offset; i++) {
    ws->upstream[i] = 0.0f;
    ws->upstream[width - 1 - i] = 0.0f;
  }
  if (job->grad_map == NULL)
    for (size_t i = offset; i < width - offset; i++)
      ws->upstream[i] = job->grad_constant;
}

void ssim__cpu_job_task(void *context, size_t task_index, unsigned worker) {
  const struct ssim__cpu_job *job = context;
  struct plane_task task;
  task.job = job;
  task.ws = &job->workspaces[worker];
  task.plane = task_index / job->strips_per_plane;
  task.width = job->width;
  task.want_grad = job->grad1 != NULL || job->grad2 != NULL;
  task.rows = strip_rows_of(job, task_index % job->strips_per_plane, task.want_grad);
  task.elem_size = job->dtype == SSIM_DTYPE_U8    ? sizeof(uint8_t)
                   : job->dtype == SSIM_DTYPE_U16 ? sizeof(uint16_t)
                                                  : sizeof(float);
  size_t plane_bytes = job->height * job->width * task.elem_size;
  task.img1 = (const unsigned char *)job->img1 + task.plane * plane_bytes;
  task.img2 = (const unsigned char *)job->img2 + task.plane * plane_bytes;
  task_prepare(&task);

  const struct strip_rows *r = &task.rows;
  for (ptrdiff_t t = r->in_lo; t < r->end; t++) {
    if (t < r->in_hi)
      load_input_row(&task, t);
    ptrdiff_t s = t - SSIM_HALO;
    if (s >= r->stat_lo && s < r->stat_hi)
      statistics_row(&task, s);
    ptrdiff_t g = t - 2 * SSIM_HALO;
    if (g >= r->grad_lo && g < r->grad_hi)
      gradient_row(&task, g);
  }
}
