/*
 * ssim_constants.h: the numbers of the metric, defined once for every backend (C, CUDA, SYCL).
 * Internal to engine/.
 *
 * The taps are fused-ssim's float32 values of exp(-(i-5)^2 / (2*1.5^2)), normalised to sum 1,
 * so that our scores agree with the implementation users compare against.
 */
#ifndef SSIM_CONSTANTS_H
#define SSIM_CONSTANTS_H

#define SSIM__GAUSS_TAPS                                                                          \
  {                                                                                               \
    0.001028380123898387f, 0.0075987582094967365f, 0.036000773310661316f,                        \
        0.10936068743467331f, 0.21300552785396576f, 0.26601171493530273f,                        \
        0.21300552785396576f, 0.10936068743467331f, 0.036000773310661316f,                       \
        0.0075987582094967365f, 0.001028380123898387f                                            \
  }

/* C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with L = 1, rounded to float as fused-ssim passes them. */
#define SSIM__C1 0.0001f
#define SSIM__C2 0.0009f

/* Scale factors of the integer input types to [0, 1]. */
#define SSIM__U8_SCALE (1.0f / 255.0f)
#define SSIM__U16_SCALE (1.0f / 65535.0f)

#endif /* SSIM_CONSTANTS_H */
