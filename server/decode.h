/*
 * decode.h: encoded image bytes to planar pixels for the engine, with libvips.
 * Shared by the daemon (on its decode threads) and the `ssim` command.
 *
 * Thread rules: every function is safe to call from any thread once ssimd_decode_init has
 * returned (libvips is thread-safe after VIPS_INIT).
 */
#ifndef SSIMD_DECODE_H
#define SSIMD_DECODE_H

#include "ssim.h"

#include <stddef.h>

/* Error classes of decoding and pairing; each maps to one HTTP status (in brackets). */
typedef enum {
  SSIMD_DECODE_OK = 0,
  SSIMD_DECODE_EFORMAT = -1,   /* not an image format we decode safely [415] */
  SSIMD_DECODE_ETOOBIG = -2,   /* the header promises more than max_pixels [413] */
  SSIMD_DECODE_ECORRUPT = -3,  /* the header is readable but the pixel data is not [422] */
  SSIMD_DECODE_EMISMATCH = -4, /* a pair that cannot be compared: sizes, grey vs colour [422] */
  SSIMD_DECODE_ETOOSMALL = -5, /* smaller than 11x11 with padding=valid [422] */
  SSIMD_DECODE_ENOMEM = -6     /* out of memory [500] */
} ssimd_decode_status;

typedef enum { SSIMD_COLOR_RGB = 0, SSIMD_COLOR_LUMA = 1 } ssimd_color;

/* A decoded image: planar (channel, row, column), alpha already flattened over black. */
struct ssimd_image {
  size_t width;
  size_t height;
  size_t channels;  /* 1 (grey) or 3 (colour); 1 after luma */
  ssim_dtype dtype; /* U8, U16 or F32, the narrowest that holds the source exactly */
  void *pixels;     /* channels*height*width elements of dtype; owned, see ssimd_image_clear */
};

/* Start libvips once per process. Returns 0, or -1 with a message in `detail` (may be NULL). */
int ssimd_decode_init(const char *argv0, char *detail, size_t detail_size);

/* Stop libvips at process exit. */
void ssimd_decode_shutdown(void);

/*
 * Decode `len` bytes at `data` (not retained) into *out, which the caller then owns and clears.
 * The header is read first: an image of more than `max_pixels` pixels (width*height) is refused
 * with SSIMD_DECODE_ETOOBIG before any pixel is decoded. Animated formats give their first frame.
 * Float sources are clamped to [0, 1]. On error *out is left empty and `detail` (may be NULL)
 * says why in one sentence.
 */
int ssimd_decode(const void *data, size_t len, size_t max_pixels, struct ssimd_image *out,
                 char *detail, size_t detail_size);

/*
 * Make two decoded images comparable under `color`, in place: luma turns colour into one
 * channel (BT.709 on the [0, 1] values); both are converted to a common dtype (the wider of the
 * two, exactly); with padding=valid both must be at least 11x11. Errors: SSIMD_DECODE_EMISMATCH
 * (sizes differ, or grey against colour with rgb), SSIMD_DECODE_ETOOSMALL, SSIMD_DECODE_ENOMEM,
 * with `detail` naming the offending image.
 */
int ssimd_image_pair_prepare(struct ssimd_image *img1, struct ssimd_image *img2, ssimd_color color,
                             ssim_padding padding, char *detail, size_t detail_size);

/* Free the pixels and zero the struct. Safe on a zeroed or already-cleared image. */
void ssimd_image_clear(struct ssimd_image *image);

#endif /* SSIMD_DECODE_H */
