/*
 * render.h: SSIM maps and gradients as 8-bit greyscale PNG images (API.md), with libvips.
 * Shared by the daemon and the `ssim` command.
 */
#ifndef SSIMD_RENDER_H
#define SSIMD_RENDER_H

#include <stddef.h>

/*
 * Encode the channel-mean of a (channels, height, width) float SSIM map as an 8-bit grey PNG,
 * value*255 rounded and clamped to [0, 255]. On success *png is a g_malloc'ed buffer the caller
 * frees with g_free, *png_len its length. Returns 0, or -1 with `detail` (may be NULL) set.
 */
int ssimd_render_map_png(const float *map, size_t channels, size_t height, size_t width, void **png,
                         size_t *png_len, char *detail, size_t detail_size);

/*
 * Encode the channel-mean g of a gradient as an 8-bit grey PNG, 128 + 127*g/max|g| rounded
 * (all 128 when the gradient is zero everywhere). Ownership and errors as ssimd_render_map_png.
 */
int ssimd_render_gradient_png(const float *gradient, size_t channels, size_t height, size_t width,
                              void **png, size_t *png_len, char *detail, size_t detail_size);

/* Write `len` bytes to a file. Returns 0, or -1 with `detail` set. */
int ssimd_write_file(const char *path, const void *data, size_t len, char *detail,
                     size_t detail_size);

#endif /* SSIMD_RENDER_H */
