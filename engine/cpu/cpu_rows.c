/*
 * cpu_rows.c: the row kernels of the CPU backend (see cpu_rows.h).
 *
 * Each hot kernel carries SSIM__CPU_CLONES: GCC builds it three times (AVX-512, AVX2, baseline)
 * and an ifunc resolver picks one when the library is loaded. The loops are written so that every
 * output element is one fixed expression of its inputs: vectorising them changes how many columns
 * a step handles, never the arithmetic of a column, which keeps results independent of the ISA.
 */
#include "cpu_rows.h"

#include "ssim_constants.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SSIM__CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef SSIM__CPU_CLONES
#define SSIM__CPU_CLONES
#endif

/* Lanes of the double-precision block sums: wide enough for one AVX-512 register of doubles. */
#define SUM_LANES 8
_Static_assert(SSIM_BLOCK % SUM_LANES == 0, "a full block is a whole number of lane steps");

static const float gauss[SSIM_WINDOW] = SSIM__GAUSS_TAPS;

SSIM__CPU_CLONES
void ssim__cpu_row_from_u8(const uint8_t *restrict src, size_t n, float *restrict dst) {
  for (size_t i = 0; i < n; i++)
    dst[i] = (float)src[i] * SSIM__U8_SCALE;
}

SSIM__CPU_CLONES
void ssim__cpu_row_from_u16(const uint16_t *restrict src, size_t n, float *restrict dst) {
  for (size_t i = 0; i < n; i++)
    dst[i] = (float)src[i] * SSIM__U16_SCALE;
}

SSIM__CPU_CLONES
int ssim__cpu_row_from_f32(const float *restrict src, size_t n, float *restrict dst) {
  /* v - v is 0 for every finite v and NaN for NaN and both infinities; folding the test into
   * the copy spares a second pass over the input. */
  int nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    float v = src[i];
    dst[i] = v;
    nonfinite |= !(v - v == 0.0f);
  }
  return nonfinite;
}

SSIM__CPU_CLONES
void ssim__cpu_row_centered(const float *restrict x, const float *restrict y, float center,
                            size_t n, float *restrict xs, float *restrict ys, float *restrict xx,
                            float *restrict yy, float *restrict xy) {
  for (size_t i = 0; i < n; i++) {
    float a = x[i] - center, b = y[i] - center;
    xs[i] = a;
    ys[i] = b;
    xx[i] = a * a;
    yy[i] = b * b;
    xy[i] = a * b;
  }
}

/* The window is symmetric (G[k] == G[10 - k]), so both blurs add the two samples that share a
 * tap before multiplying: 6 multiplications instead of 11, in the same order for every column. */
SSIM__CPU_CLONES
void ssim__cpu_row_hblur(const float *restrict padded, size_t n, float *restrict out) {
  const float t0 = gauss[0], t1 = gauss[1], t2 = gauss[2], t3 = gauss[3], t4 = gauss[4],
              t5 = gauss[5];
  for (size_t i = 0; i < n; i++) {
    const float *p = padded + i;
    out[i] = t0 * (p[0] + p[10]) + t1 * (p[1] + p[9]) + t2 * (p[2] + p[8]) + t3 * (p[3] + p[7]) +
             t4 * (p[4] + p[6]) + t5 * p[5];
  }
}

SSIM__CPU_CLONES
static void vblur11(const float *restrict r0, const float *restrict r1, const float *restrict r2,
                    const float *restrict r3, const float *restrict r4, const float *restrict r5,
                    const float *restrict r6, const float *restrict r7, const float *restrict r8,
                    const float *restrict r9, const float *restrict r10, size_t n,
                    float *restrict out) {
  const float t0 = gauss[0], t1 = gauss[1], t2 = gauss[2], t3 = gauss[3], t4 = gauss[4],
              t5 = gauss[5];
  for (size_t i = 0; i < n; i++)
    out[i] = t0 * (r0[i] + r10[i]) + t1 * (r1[i] + r9[i]) + t2 * (r2[i] + r8[i]) +
             t3 * (r3[i] + r7[i]) + t4 * (r4[i] + r6[i]) + t5 * r5[i];
}

void ssim__cpu_row_vblur(const float *const rows[SSIM_WINDOW], size_t n, float *out) {
  /* Eleven separate restrict parameters tell the compiler that `out` overlaps none of the rows;
   * through an array of pointers it would have to check at run time. */
  vblur11(rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6], rows[7], rows[8], rows[9],
          rows[10], n, out);
}

/* The terms of the SSIM of one pixel, as fused-ssim names them. */
struct ssim_terms {
  float mu1, mu2; /* the local means */
  float a;        /* mu1^2 + mu2^2 + C1 */
  float b;        /* sigma11 + sigma22 + C2 */
  float cn;       /* 2 mu1 mu2 + C1 */
  float d;        /* 2 sigma12 + C2 */
  float ab;       /* a * b */
  float s;        /* (cn * d) / (a * b), not clamped */
};

/* The terms at one pixel from its statistics centred on `center` (see ssim__cpu_row_centered).
 * Written so that swapping the two images gives the same bits: every operation that mixes them is a
 * commutative product or sum of two operands. */
static inline struct ssim_terms ssim_terms_at(float m1, float m2, float e11, float e22, float e12,
                                              float center) {
  struct ssim_terms t;
  float mu1 = m1 + center, mu2 = m2 + center;
  float s11 = e11 - m1 * m1, s22 = e22 - m2 * m2, s12 = e12 - m1 * m2;
  /* Rounding can push a variance slightly below zero; the metric clamps it there. */
  s11 = s11 < 0.0f ? 0.0f : s11;
  s22 = s22 < 0.0f ? 0.0f : s22;
  t.mu1 = mu1;
  t.mu2 = mu2;
  t.a = mu1 * mu1 + mu2 * mu2 + SSIM__C1;
  t.b = s11 + s22 + SSIM__C2;
  t.cn = 2.0f * (mu1 * mu2) + SSIM__C1;
  t.d = 2.0f * s12 + SSIM__C2;
  t.ab = t.a * t.b;
  t.s = (t.cn * t.d) / t.ab;
  return t;
}

static inline float clamp_unit(float s) {
  return s < -1.0f ? -1.0f : (s > 1.0f ? 1.0f : s);
}

SSIM__CPU_CLONES
void ssim__cpu_row_ssim(const float *restrict m1, const float *restrict m2,
                        const float *restrict e11, const float *restrict e22,
                        const float *restrict e12, float center, size_t n, float *restrict ssim) {
  for (size_t i = 0; i < n; i++)
    ssim[i] = clamp_unit(ssim_terms_at(m1[i], m2[i], e11[i], e22[i], e12[i], center).s);
}

/*
 * The partials of S = Cn D / (A B), with A = mu1^2 + mu2^2 + C1, B = s11 + s22 + C2,
 * Cn = 2 mu1 mu2 + C1, D = 2 s12 + C2, where mu1 stands for itself only (the variances are
 * separate variables; their own dependence on mu is folded in here, which is why dS/dmu1 carries
 * the B terms):
 *   dS/dmu1 = 2 mu2 D/(AB) - 2 mu2 Cn/(AB) - 2 mu1 Cn D/(A^2 B) + 2 mu1 Cn D/(A B^2)
 *           = 2/(AB) * (mu2 (D - Cn) + mu1 S (A - B))           (using Cn D = S A B)
 *   dS/ds11 = dS/ds22 = -Cn D/(A B^2) = -(1/(AB)) * A * S
 *   dS/ds12 = 2 Cn/(AB)
 * The factored forms are the same functions with two divisions per pixel instead of nine. With
 * q = g/(AB) (g = 0 where the map was clamped, whose gradient is zero):
 *   pa = 2q (mu_b (D - Cn) + mu_a S (A - B)),  ps = -(q A) S,  pab = 2q Cn.
 */
SSIM__CPU_CLONES
void ssim__cpu_row_partials(const float *restrict m_a, const float *restrict m_b,
                            const float *restrict e_aa, const float *restrict e_bb,
                            const float *restrict e_ab, const float *restrict g, float center,
                            size_t n, float *restrict ssim, float *restrict pa, float *restrict ps,
                            float *restrict pab) {
  for (size_t i = 0; i < n; i++) {
    struct ssim_terms t = ssim_terms_at(m_a[i], m_b[i], e_aa[i], e_bb[i], e_ab[i], center);
    float ma = t.mu1, mb = t.mu2;
    int inside = t.s >= -1.0f && t.s <= 1.0f;
    ssim[i] = clamp_unit(t.s);
    float q = (inside ? g[i] : 0.0f) / t.ab;
    float two_q = 2.0f * q, d_minus_cn = t.d - t.cn, a_minus_b = t.a - t.b;
    pa[i] = two_q * (mb * d_minus_cn + ma * t.s * a_minus_b);
    ps[i] = -(q * t.a) * t.s;
    pab[i] = two_q * t.cn;
  }
}

SSIM__CPU_CLONES
void ssim__cpu_row_partials2(const float *restrict m1, const float *restrict m2,
                             const float *restrict e11, const float *restrict e22,
                             const float *restrict e12, const float *restrict g, float center,
                             size_t n, float *restrict ssim, float *restrict p1, float *restrict p2,
                             float *restrict ps, float *restrict p12) {
  /* The same expressions as ssim__cpu_row_partials, so that asking for one gradient or both
   * gives the same bits for each. */
  for (size_t i = 0; i < n; i++) {
    struct ssim_terms t = ssim_terms_at(m1[i], m2[i], e11[i], e22[i], e12[i], center);
    float mu1 = t.mu1, mu2 = t.mu2;
    int inside = t.s >= -1.0f && t.s <= 1.0f;
    ssim[i] = clamp_unit(t.s);
    float q = (inside ? g[i] : 0.0f) / t.ab;
    float two_q = 2.0f * q, d_minus_cn = t.d - t.cn, a_minus_b = t.a - t.b;
    p1[i] = two_q * (mu2 * d_minus_cn + mu1 * t.s * a_minus_b);
    p2[i] = two_q * (mu1 * d_minus_cn + mu2 * t.s * a_minus_b);
    ps[i] = -(q * t.a) * t.s;
    p12[i] = two_q * t.cn;
  }
}

/*
 * With P_a = g dS/dmu_a etc. blurred by the (symmetric) window, the chain rule through
 * mu_a = G*a, sigma_aa = G*(a^2) - mu_a^2 and sigma_ab = G*(ab) - mu_a mu_b gives, at pixel p,
 *   dL/da(p) = (G*P_a)(p) + 2 a(p) (G*Ps)(p) + b(p) (G*P_ab)(p),
 * the mu_a^2 and mu_a mu_b parts of the variances having been folded into P_a already.
 */
SSIM__CPU_CLONES
void ssim__cpu_row_gradient(const float *restrict bp, const float *restrict bs,
                            const float *restrict bab, const float *restrict self,
                            const float *restrict other, size_t n, float *restrict out) {
  for (size_t i = 0; i < n; i++)
    out[i] = bp[i] + (2.0f * self[i]) * bs[i] + other[i] * bab[i];
}

SSIM__CPU_CLONES
double ssim__cpu_row_block_sums(const float *restrict ssim, size_t n, double *restrict blocks) {
  /* Each block is summed in SUM_LANES interleaved lanes (column j goes to lane j % SUM_LANES),
   * which vectorises without reordering: the full-block loop and the scalar loop of a clipped
   * block add the same values to each lane in the same order. */
  double row = 0.0;
  size_t bx = 0;
  for (size_t start = 0; start < n; start += SSIM_BLOCK, bx++) {
    const float *block = ssim + start;
    double lane[SUM_LANES] = {0};
    size_t len = n - start < SSIM_BLOCK ? n - start : SSIM_BLOCK;
    if (len == SSIM_BLOCK) {
      for (size_t j = 0; j < SSIM_BLOCK; j += SUM_LANES)
        for (size_t k = 0; k < SUM_LANES; k++)
          lane[k] += (double)block[j + k];
    } else {
      for (size_t j = 0; j < len; j++)
        lane[j % SUM_LANES] += (double)block[j];
    }
    /* A fixed tree over the eight lanes. */
    double sum =
        ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    blocks[bx] = sum;
    row += sum;
  }
  return row;
}
