/*
 * cpu_rows.h: the row kernels of the CPU backend. Private to engine/cpu/.
 *
 * Every kernel works on one row of plain float arrays whose buffers do not overlap (the
 * pointers are restrict-qualified), so that the compiler vectorises its loop over columns. Each
 * is built for AVX-512, AVX2 and baseline x86-64 and picked at load time; since the project
 * compiles with -std=c11 (no FMA contraction) and no kernel reorders a sum, every variant
 * produces the same bits.
 *
 * A "padded" row holds SSIM__CPU_PAD zeros, then the row's n values, then SSIM__CPU_PAD zeros;
 * pointers to padded rows point at the first zero, i.e. at column -SSIM__CPU_PAD.
 */
#ifndef SSIM_CPU_ROWS_H
#define SSIM_CPU_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "ssim.h"

/* Zeros on each side of a padded row: the reach of the window. */
#define SSIM__CPU_PAD SSIM_HALO

/** Convert n 8-bit values to [0, 1] floats (v / 255). */
void ssim__cpu_row_from_u8(const uint8_t *restrict src, size_t n, float *restrict dst);

/** Convert n 16-bit values to [0, 1] floats (v / 65535). */
void ssim__cpu_row_from_u16(const uint16_t *restrict src, size_t n, float *restrict dst);

/** Copy n floats; returns nonzero when any of them is NaN or infinite. */
int ssim__cpu_row_from_f32(const float *restrict src, size_t n, float *restrict dst);

/*
 * The statistics are blurred from values centred on a constant c (x' = x - c), which the
 * variance and covariance do not depend on (the window sums to 1; outside the image x = 0, so
 * x' = -c there), but which keeps G*(x'^2) small next to G*(x^2) for values in [0, 1]: the
 * cancellation in G*(x^2) - mu^2 costs up to 4x fewer float32 digits. Where most of a window
 * lies outside the image (images narrower than the window) the padding would dominate, and
 * c = 0 is the better choice; with c = 0 the arithmetic is exactly the plain formulation.
 */
#define SSIM__CPU_CENTER 0.5f

/** With c = `center`: xs = x - c, ys = y - c, xx = xs*xs, yy = ys*ys, xy = xs*ys over n columns. */
void ssim__cpu_row_centered(const float *restrict x, const float *restrict y, float center,
                            size_t n, float *restrict xs, float *restrict ys, float *restrict xx,
                            float *restrict yy, float *restrict xy);

/** Horizontal 11-tap Gaussian of a padded row: out[i] = sum_k G[k] * padded[i + k], i < n. */
void ssim__cpu_row_hblur(const float *restrict padded, size_t n, float *restrict out);

/** Vertical 11-tap Gaussian: out[i] = sum_k G[k] * rows[k][i], i < n. The rows may repeat (one
 * shared row stands for every row outside the image) but must not overlap `out`. */
void ssim__cpu_row_vblur(const float *const rows[SSIM_WINDOW], size_t n, float *out);

/** One row of the SSIM map, clamped to [-1, 1], from the blurred statistics of values centred
 * on c = `center` (see ssim__cpu_row_centered): m1 = G*x', m2 = G*y', e11 = G*(x'x'),
 * e22 = G*(y'y'), e12 = G*(x'y'), from which mu1 = m1 + c, sigma11 = e11 - m1^2 and
 * sigma12 = e12 - m1 m2. */
void ssim__cpu_row_ssim(const float *restrict m1, const float *restrict m2,
                        const float *restrict e11, const float *restrict e22,
                        const float *restrict e12, float center, size_t n, float *restrict ssim);

/**
 * The SSIM row as ssim__cpu_row_ssim writes it (from the same centred statistics), plus the
 * upstream gradient g = dL/dmap pushed through the map onto the statistics of image a (the image
 * whose gradient is wanted): pa = g * dS/dmu_a, ps = g * dS/dsigma_aa (= g * dS/dsigma_bb), pab =
 * g * dS/dsigma_ab, all zero where the map was clamped. The map is symmetric in the two images, so
 * passing (m2, m1, e22, e11) gives the partials of image 2 and bitwise the same map row.
 */
void ssim__cpu_row_partials(const float *restrict m_a, const float *restrict m_b,
                            const float *restrict e_aa, const float *restrict e_bb,
                            const float *restrict e_ab, const float *restrict g, float center,
                            size_t n, float *restrict ssim, float *restrict pa, float *restrict ps,
                            float *restrict pab);

/** As ssim__cpu_row_partials for both images at once: p1 = g * dS/dmu1, p2 = g * dS/dmu2. */
void ssim__cpu_row_partials2(const float *restrict m1, const float *restrict m2,
                             const float *restrict e11, const float *restrict e22,
                             const float *restrict e12, const float *restrict g, float center,
                             size_t n, float *restrict ssim, float *restrict p1, float *restrict p2,
                             float *restrict ps, float *restrict p12);

/** One gradient row: out = bp + 2 * self * bs + other * bab, where bp, bs, bab are the blurred
 * partials (G*P_self, G*Ps, G*P12) and self/other the two images' rows. */
void ssim__cpu_row_gradient(const float *restrict bp, const float *restrict bs,
                            const float *restrict bab, const float *restrict self,
                            const float *restrict other, size_t n, float *restrict out);

/**
 * Sums of a map row in double over each SSIM_BLOCK-column block (the last one clipped) into
 * blocks[0 .. ceil(n / SSIM_BLOCK)), and returns their sum, added block by block. The order of
 * every addition depends on n alone.
 */
double ssim__cpu_row_block_sums(const float *restrict ssim, size_t n, double *restrict blocks);

#endif /* SSIM_CPU_ROWS_H */
