/*
 * decode.c: encoded image bytes to planar pixels for the engine, with libvips.
 *
 * The input is untrusted. Three rules follow from that:
 * - only loaders of an allow-list are used (PNG, JPEG, WebP, TIFF, GIF, HEIF/AVIF, JPEG 2000,
 *   JPEG XL); libvips would otherwise also hand buffers to ImageMagick, PDF or SVG loaders;
 * - the header is read on its own first and the pixel count checked against the caller's limit
 *   before a single pixel is decoded or a pixel buffer allocated;
 * - loaders run with fail_on=error, so truncated or damaged pixel data is an error rather than
 *   an image padded with grey; the caller never sees a half-decoded image.
 *
 * Pixels are pulled through a sequential libvips pipeline a strip of rows at a time and written
 * straight into the planar buffer, so the only full-size allocation is the result itself.
 */
#include "decode.h"

#include <vips/vips.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows pulled from libvips per request: large enough to amortise the call, small enough to
 * keep the pipeline's own buffers small. */
#define DECODE_STRIP_ROWS 64

/* The loaders trusted with client bytes (libvips type names), and the format each reads. */
static const struct {
  const char *loader;
  const char *format;
} allowed_loaders[] = {
    {"VipsForeignLoadPngBuffer", "PNG"},     {"VipsForeignLoadJpegBuffer", "JPEG"},
    {"VipsForeignLoadWebpBuffer", "WebP"},   {"VipsForeignLoadTiffBuffer", "TIFF"},
    {"VipsForeignLoadNsgifBuffer", "GIF"},   {"VipsForeignLoadGifBuffer", "GIF"},
    {"VipsForeignLoadHeifBuffer", "HEIF"},   {"VipsForeignLoadJp2kBuffer", "JPEG 2000"},
    {"VipsForeignLoadJxlBuffer", "JPEG XL"},
};

static void set_detail(char *detail, size_t detail_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void set_detail(char *detail, size_t detail_size, const char *format, ...) {
  if (detail == NULL || detail_size == 0)
    return;
  va_list args;
  va_start(args, format);
  vsnprintf(detail, detail_size, format, args);
  va_end(args);
}

/* libvips reports problems of client images as GLib warnings on stderr; the decode status and
 * its detail already say what went wrong, once, to whoever asked, so the warnings are dropped. */
static void drop_log_message(const gchar *domain, GLogLevelFlags level, const gchar *message,
                             gpointer user_data) {
  (void)domain;
  (void)level;
  (void)message;
  (void)user_data;
}

int ssimd_decode_init(const char *argv0, char *detail, size_t detail_size) {
  static int started;
  if (started)
    return 0;
  if (VIPS_INIT(argv0 != NULL ? argv0 : "ssimd") != 0) {
    set_detail(detail, detail_size, "libvips could not start: %s", vips_error_buffer());
    vips_error_clear();
    return -1;
  }
  /* The operation cache keys buffer loads on the blob's address; client buffers are freed and
   * their addresses reused, and nothing here repeats an operation, so the cache is off. */
  vips_cache_set_max(0);
  g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                    drop_log_message, NULL);
  started = 1;
  return 0;
}

void ssimd_decode_shutdown(void) {
  vips_shutdown();
}

void ssimd_image_clear(struct ssimd_image *image) {
  if (image == NULL)
    return;
  free(image->pixels);
  memset(image, 0, sizeof(*image));
}

static size_t dtype_size(ssim_dtype dtype) {
  switch (dtype) {
  case SSIM_DTYPE_U8:
    return 1;
  case SSIM_DTYPE_U16:
    return 2;
  default:
    return 4;
  }
}

/* Allocate channels*height*width elements of `dtype`, or NULL on overflow or out of memory. */
static void *alloc_pixels(size_t channels, size_t height, size_t width, ssim_dtype dtype) {
  size_t size = dtype_size(dtype);
  if (width != 0 && height > SIZE_MAX / width)
    return NULL;
  size_t plane = height * width;
  if (channels != 0 && plane > SIZE_MAX / channels / size)
    return NULL;
  return malloc(channels * plane * size == 0 ? 1 : channels * plane * size);
}

/* The format name of an allowed loader, or NULL for a loader that is not trusted. */
static const char *loader_format(const char *loader) {
  for (size_t i = 0; i < sizeof(allowed_loaders) / sizeof(allowed_loaders[0]); i++) {
    if (strcmp(loader, allowed_loaders[i].loader) == 0)
      return allowed_loaders[i].format;
  }
  return NULL;
}

/*
 * Bring a loaded image to one of the layouts copied out below: 1 or 3 colour bands plus an
 * optional alpha band, in uchar, ushort or float. Takes a reference of `in` (always released)
 * and returns a new image in *out, or an ssimd_decode_status.
 */
static int normalise_layout(VipsImage *in, VipsImage **out, char *detail, size_t detail_size) {
  VipsImage *image = in;
  VipsImage *next = NULL;

  /* Packed codings (LABQ, Radiance) have to be unpacked before anything else can read them. */
  if (image->Coding != VIPS_CODING_NONE) {
    if (vips_image_decode(image, &next) != 0)
      goto corrupt;
    g_object_unref(image);
    image = next;
  }

  VipsInterpretation interpretation = vips_image_guess_interpretation(image);
  int colour;
  switch (interpretation) {
  case VIPS_INTERPRETATION_B_W:
  case VIPS_INTERPRETATION_GREY16:
    colour = 0;
    break;
  case VIPS_INTERPRETATION_sRGB:
  case VIPS_INTERPRETATION_RGB:
  case VIPS_INTERPRETATION_RGB16:
  case VIPS_INTERPRETATION_scRGB:
    /* scRGB is what libvips calls float RGB (e.g. a float TIFF); API.md takes float samples as
     * they are, so it is not converted (which would apply the sRGB transfer curve). */
    colour = 1;
    break;
  case VIPS_INTERPRETATION_MULTIBAND:
    /* No colour space recorded: read the band count as grey(+alpha) or RGB(+alpha). */
    if (image->Bands > 4) {
      set_detail(detail, detail_size, "images of %d bands are not supported", image->Bands);
      g_object_unref(image);
      return SSIMD_DECODE_EFORMAT;
    }
    colour = image->Bands >= 3;
    break;
  default: {
    /* CMYK, Lab, XYZ, scRGB, ...: convert to sRGB, to 16-bit RGB where the source is 16-bit so
     * that no precision is thrown away. vips_colourspace carries an alpha band through. */
    VipsInterpretation target =
        image->BandFmt == VIPS_FORMAT_USHORT ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB;
    if (vips_colourspace(image, &next, target, NULL) != 0) {
      set_detail(detail, detail_size, "the image's colour space (%s) cannot be converted to RGB",
                 vips_enum_nick(VIPS_TYPE_INTERPRETATION, interpretation));
      g_object_unref(image);
      vips_error_clear();
      return SSIMD_DECODE_EFORMAT;
    }
    g_object_unref(image);
    image = next;
    colour = 1;
    break;
  }
  }

  int alpha_bands = image->Bands - (colour ? 3 : 1);
  if (alpha_bands < 0 || alpha_bands > 1) {
    /* Extra bands beyond alpha (e.g. a TIFF with spot channels) carry nothing we compare. */
    int keep = colour ? 4 : 2;
    if (alpha_bands < 0 || vips_extract_band(image, &next, 0, "n", keep, NULL) != 0) {
      set_detail(detail, detail_size, "a %s image of %d bands is not supported",
                 colour ? "colour" : "grey", image->Bands);
      g_object_unref(image);
      vips_error_clear();
      return SSIMD_DECODE_EFORMAT;
    }
    g_object_unref(image);
    image = next;
  }

  switch (image->BandFmt) {
  case VIPS_FORMAT_UCHAR:
  case VIPS_FORMAT_USHORT:
  case VIPS_FORMAT_FLOAT:
    break;
  case VIPS_FORMAT_DOUBLE:
    /* The engine works in float32; the cast keeps every value of [0, 1] to float precision. */
    if (vips_cast(image, &next, VIPS_FORMAT_FLOAT, NULL) != 0)
      goto corrupt;
    g_object_unref(image);
    image = next;
    break;
  default:
    /* Signed and 32-bit integer samples have no agreed [0, 1] scaling. */
    set_detail(detail, detail_size, "%s samples are not supported (8-bit, 16-bit or float only)",
               vips_enum_nick(VIPS_TYPE_BAND_FORMAT, image->BandFmt));
    g_object_unref(image);
    return SSIMD_DECODE_EFORMAT;
  }
  *out = image;
  return SSIMD_DECODE_OK;

corrupt:
  g_object_unref(image);
  vips_error_clear();
  set_detail(detail, detail_size, "the image could not be converted");
  return SSIMD_DECODE_ECORRUPT;
}

/* Float samples are clamped to [0, 1] (API.md); NaN has no place in that range and becomes 0. */
static inline float clamp_unit(float v) {
  if (!(v > 0.0f))
    return 0.0f;
  return v < 1.0f ? v : 1.0f;
}

/*
 * Copy `rows` interleaved rows (bands = colour + alpha) into the planar buffer at row `y0`,
 * flattening alpha over black. Integer samples are flattened with exact rounding,
 * round(v * a / max), so the result stays in the source's dtype: the value any "flatten over
 * black" tool writes for that pixel.
 */
static void copy_rows(const VipsRegion *region, int y0, int rows, size_t width, size_t height,
                      size_t colour_bands, int has_alpha, ssim_dtype dtype, void *pixels) {
  size_t bands = colour_bands + (has_alpha ? 1 : 0);
  size_t plane = width * height;
  for (int r = 0; r < rows; r++) {
    int y = y0 + r;
    const VipsPel *line = VIPS_REGION_ADDR(region, 0, y);
    size_t row_base = (size_t)y * width;
    if (dtype == SSIM_DTYPE_U8) {
      const uint8_t *src = line;
      uint8_t *dst = pixels;
      for (size_t x = 0; x < width; x++, src += bands) {
        uint32_t a = has_alpha ? src[colour_bands] : 255u;
        for (size_t c = 0; c < colour_bands; c++)
          dst[c * plane + row_base + x] = (uint8_t)((src[c] * a + 127u) / 255u);
      }
    } else if (dtype == SSIM_DTYPE_U16) {
      const uint16_t *src = (const uint16_t *)line;
      uint16_t *dst = pixels;
      for (size_t x = 0; x < width; x++, src += bands) {
        uint64_t a = has_alpha ? src[colour_bands] : 65535u;
        for (size_t c = 0; c < colour_bands; c++)
          dst[c * plane + row_base + x] = (uint16_t)((src[c] * a + 32767u) / 65535u);
      }
    } else {
      const float *src = (const float *)line;
      float *dst = pixels;
      for (size_t x = 0; x < width; x++, src += bands) {
        float a = has_alpha ? clamp_unit(src[colour_bands]) : 1.0f;
        for (size_t c = 0; c < colour_bands; c++)
          dst[c * plane + row_base + x] = clamp_unit(src[c]) * a;
      }
    }
  }
}

int ssimd_decode(const void *data, size_t len, size_t max_pixels, struct ssimd_image *out,
                 char *detail, size_t detail_size) {
  if (out == NULL)
    return SSIMD_DECODE_EFORMAT;
  memset(out, 0, sizeof(*out));
  if (data == NULL || len == 0) {
    set_detail(detail, detail_size, "the image is empty");
    return SSIMD_DECODE_EFORMAT;
  }

  const char *loader = vips_foreign_find_load_buffer(data, len);
  const char *format = loader != NULL ? loader_format(loader) : NULL;
  if (format == NULL) {
    vips_error_clear();
    set_detail(detail, detail_size,
               "not an image in a supported format (PNG, JPEG, WebP, TIFF, GIF, HEIF/AVIF, "
               "JPEG 2000, JPEG XL)");
    return SSIMD_DECODE_EFORMAT;
  }

  /* Only the header is read here: libvips loads lazily, pixels come when a region is asked. */
  VipsImage *image = vips_image_new_from_buffer(data, len, "", "access", VIPS_ACCESS_SEQUENTIAL,
                                                "fail_on", VIPS_FAIL_ON_ERROR, NULL);
  if (image == NULL) {
    /* The bytes were recognised as this format, so this is a damaged image (often a truncated
     * one: WebP and GIF headers describe the whole file), not an unsupported format. */
    vips_error_clear();
    set_detail(detail, detail_size, "the %s image is corrupt or truncated", format);
    return SSIMD_DECODE_ECORRUPT;
  }
  size_t width = (size_t)image->Xsize;
  size_t height = (size_t)image->Ysize;
  if (width == 0 || height == 0 || height > max_pixels / width) {
    set_detail(detail, detail_size, "the image is %zux%zu pixels, more than the limit of %zu",
               width, height, max_pixels);
    g_object_unref(image);
    return SSIMD_DECODE_ETOOBIG;
  }

  VipsImage *layout = NULL;
  int status = normalise_layout(image, &layout, detail, detail_size);
  if (status != SSIMD_DECODE_OK)
    return status;
  /* Conversions never change the size; a loader that did would break the pixel limit. */
  if ((size_t)layout->Xsize != width || (size_t)layout->Ysize != height) {
    g_object_unref(layout);
    set_detail(detail, detail_size, "the %s image changed size while decoding", format);
    return SSIMD_DECODE_ECORRUPT;
  }

  ssim_dtype dtype = layout->BandFmt == VIPS_FORMAT_UCHAR    ? SSIM_DTYPE_U8
                     : layout->BandFmt == VIPS_FORMAT_USHORT ? SSIM_DTYPE_U16
                                                             : SSIM_DTYPE_F32;
  size_t colour_bands = layout->Bands >= 3 ? 3 : 1;
  int has_alpha = (size_t)layout->Bands > colour_bands;
  void *pixels = alloc_pixels(colour_bands, height, width, dtype);
  VipsRegion *region = pixels != NULL ? vips_region_new(layout) : NULL;
  if (region == NULL) {
    free(pixels);
    g_object_unref(layout);
    vips_error_clear();
    set_detail(detail, detail_size, "out of memory decoding a %zux%zu image", width, height);
    return SSIMD_DECODE_ENOMEM;
  }

  for (int y = 0; y < (int)height; y += DECODE_STRIP_ROWS) {
    int rows = (int)height - y < DECODE_STRIP_ROWS ? (int)height - y : DECODE_STRIP_ROWS;
    VipsRect rect = {.left = 0, .top = y, .width = (int)width, .height = rows};
    if (vips_region_prepare(region, &rect) != 0) {
      g_object_unref(region);
      g_object_unref(layout);
      free(pixels);
      vips_error_clear();
      set_detail(detail, detail_size, "the %s pixel data is corrupt or truncated", format);
      return SSIMD_DECODE_ECORRUPT;
    }
    copy_rows(region, y, rows, width, height, colour_bands, has_alpha, dtype, pixels);
  }
  g_object_unref(region);
  g_object_unref(layout);

  out->width = width;
  out->height = height;
  out->channels = colour_bands;
  out->dtype = dtype;
  out->pixels = pixels;
  return SSIMD_DECODE_OK;
}

/* Rank of a dtype by width: every value of a lower rank is exactly representable in a higher. */
static int dtype_rank(ssim_dtype dtype) {
  return dtype == SSIM_DTYPE_U8 ? 0 : dtype == SSIM_DTYPE_U16 ? 1 : 2;
}

/* The engine's scale factors, written the same way so that a converted value is the float the
 * engine would have computed from the integer. */
#define U8_SCALE (1.0f / 255.0f)
#define U16_SCALE (1.0f / 65535.0f)

/* The [0, 1] value of element i of an image. */
static inline float unit_value(const struct ssimd_image *image, size_t i) {
  switch (image->dtype) {
  case SSIM_DTYPE_U8:
    return (float)((const uint8_t *)image->pixels)[i] * U8_SCALE;
  case SSIM_DTYPE_U16:
    return (float)((const uint16_t *)image->pixels)[i] * U16_SCALE;
  default:
    return ((const float *)image->pixels)[i];
  }
}

/* Replace a colour image by its BT.709 luma, as float. */
static int image_to_luma(struct ssimd_image *image) {
  size_t plane = image->width * image->height;
  float *luma = alloc_pixels(1, image->height, image->width, SSIM_DTYPE_F32);
  if (luma == NULL)
    return SSIMD_DECODE_ENOMEM;
  for (size_t i = 0; i < plane; i++) {
    float r = unit_value(image, i);
    float g = unit_value(image, plane + i);
    float b = unit_value(image, 2 * plane + i);
    luma[i] = 0.2126f * r + 0.7152f * g + 0.0722f * b;
  }
  free(image->pixels);
  image->pixels = luma;
  image->channels = 1;
  image->dtype = SSIM_DTYPE_F32;
  return SSIMD_DECODE_OK;
}

/* Widen an image to `dtype` exactly: u8 to u16 as v*257 (255 maps to 65535), integers to float
 * by the engine's scale. */
static int image_widen(struct ssimd_image *image, ssim_dtype dtype) {
  if (dtype_rank(image->dtype) >= dtype_rank(dtype))
    return SSIMD_DECODE_OK;
  size_t count = image->channels * image->width * image->height;
  void *wide = alloc_pixels(image->channels, image->height, image->width, dtype);
  if (wide == NULL)
    return SSIMD_DECODE_ENOMEM;
  if (dtype == SSIM_DTYPE_U16) {
    const uint8_t *src = image->pixels;
    uint16_t *dst = wide;
    for (size_t i = 0; i < count; i++)
      dst[i] = (uint16_t)(src[i] * 257u);
  } else {
    float *dst = wide;
    for (size_t i = 0; i < count; i++)
      dst[i] = unit_value(image, i);
  }
  free(image->pixels);
  image->pixels = wide;
  image->dtype = dtype;
  return SSIMD_DECODE_OK;
}

int ssimd_image_pair_prepare(struct ssimd_image *img1, struct ssimd_image *img2, ssimd_color color,
                             ssim_padding padding, char *detail, size_t detail_size) {
  if (img1 == NULL || img2 == NULL || img1->pixels == NULL || img2->pixels == NULL) {
    set_detail(detail, detail_size, "both images are needed");
    return SSIMD_DECODE_EMISMATCH;
  }
  if (img1->width != img2->width || img1->height != img2->height) {
    set_detail(detail, detail_size,
               "img1 is %zux%zu but img2 is %zux%zu; they must be the same size", img1->width,
               img1->height, img2->width, img2->height);
    return SSIMD_DECODE_EMISMATCH;
  }
  if (padding == SSIM_PADDING_VALID && (img1->width < SSIM_WINDOW || img1->height < SSIM_WINDOW)) {
    set_detail(detail, detail_size,
               "padding=valid needs images of at least 11x11 pixels; these are %zux%zu",
               img1->width, img1->height);
    return SSIMD_DECODE_ETOOSMALL;
  }
  if (color == SSIMD_COLOR_LUMA) {
    struct ssimd_image *images[2] = {img1, img2};
    for (int i = 0; i < 2; i++) {
      if (images[i]->channels == 3 && image_to_luma(images[i]) != SSIMD_DECODE_OK) {
        set_detail(detail, detail_size, "out of memory converting img%d to luma", i + 1);
        return SSIMD_DECODE_ENOMEM;
      }
    }
  } else if (img1->channels != img2->channels) {
    set_detail(detail, detail_size,
               "img1 is %s but img2 is %s; use color=luma to compare grey with colour",
               img1->channels == 1 ? "grey" : "colour", img2->channels == 1 ? "grey" : "colour");
    return SSIMD_DECODE_EMISMATCH;
  }
  ssim_dtype common =
      dtype_rank(img1->dtype) >= dtype_rank(img2->dtype) ? img1->dtype : img2->dtype;
  if (image_widen(img1, common) != SSIMD_DECODE_OK ||
      image_widen(img2, common) != SSIMD_DECODE_OK) {
    set_detail(detail, detail_size, "out of memory converting the images to a common type");
    return SSIMD_DECODE_ENOMEM;
  }
  return SSIMD_DECODE_OK;
}
