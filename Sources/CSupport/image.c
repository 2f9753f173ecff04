// JPEG and PNG decoding behind setjmp (see rada_image.h). Matches the modes and bytes Pillow 13 gives for the
// same file: same libjpeg-turbo defaults (CMYK and YCCK JPEGs come out as CMYK, inverted like Pillow's
// JpegImagePlugin "CMYK;I"), and for PNG the same unpacking rules (high byte of 16-bit colour, P and 1 kept
// recognisable because Pillow resizes them with NEAREST).
#include "rada_image.h"
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

void rada_image_free(rada_image *image) {
  if (image && image->pixels) { free(image->pixels); image->pixels = NULL; }
}

size_t rada_image_max_pixels(void) {
  const char *text = getenv("RADA_MAX_IMAGE_PIXELS");
  if (text && *text) {
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (end && *end == 0 && value > 0 && value <= (unsigned long long)SIZE_MAX / 16) return (size_t)value;
  }
  return (size_t)1 << 26;
}

// Checked right after the header, before any pixel memory is allocated: 1 (message in `error`) when
// width x height exceeds rada_image_max_pixels(), or the sides are more than RADA_IMAGE_MAX_ASPECT:1 apart
// (preprocessing scales the short side to the model's input: a 1 x 10^6 strip would become 224 x 2.24e8).
static int too_many_pixels(size_t width, size_t height, char *error, size_t errorSize) {
  size_t limit = rada_image_max_pixels();
  size_t longer = width > height ? width : height, shorter = width > height ? height : width;
  if (width == 0 || height == 0) return 0;
  if (width > limit / height) {
    snprintf(error, errorSize, "it declares %zux%zu pixels, more than the decoded-pixel limit of %zu "
             "(raise it with RADA_MAX_IMAGE_PIXELS if the image is genuine)", width, height, limit);
    return 1;
  }
  if (longer / RADA_IMAGE_MAX_ASPECT > shorter) {
    snprintf(error, errorSize, "its sides %zux%zu are more than %d:1 apart; scaling its short side to the model's "
             "input would take too much memory", width, height, RADA_IMAGE_MAX_ASPECT);
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- JPEG

typedef struct {
  struct jpeg_error_mgr base;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void jpeg_fail(j_common_ptr info) {
  jpeg_failure *failure = (jpeg_failure *)info->err;
  (*info->err->format_message)(info, failure->message);
  longjmp(failure->jump, 1);
}

// libjpeg errors that mean "valid file, variant this build cannot decode" rather than "corrupt": rewrites
// `error` to name the variant and returns 1. Pillow 13 refuses 12-bit JPEGs too ("cannot handle 12-bit layers").
static int jpeg_unsupported(const struct jpeg_error_mgr *err, char *error, size_t errorSize) {
  switch (err->msg_code) {
  case JERR_BAD_PRECISION:
    snprintf(error, errorSize, "%d-bit samples; only 8-bit JPEG is supported", err->msg_parm.i[0]);
    return 1;
  case JERR_SOF_UNSUPPORTED:
    snprintf(error, errorSize, "JPEG process SOF type 0x%02x (lossless or hierarchical); only baseline, "
             "progressive and arithmetic-coded JPEG are supported", err->msg_parm.i[0]);
    return 1;
  case JERR_ARITH_NOTIMPL:
    snprintf(error, errorSize, "arithmetic coding, which this libjpeg build lacks");
    return 1;
  default:
    return 0;
  }
}

// Corrupt-data warnings are ignored (Pillow decodes such files), except a premature end of file: Pillow
// raises "image file is truncated" for that unless LOAD_TRUNCATED_IMAGES is set, so we fail too.
static void jpeg_warn(j_common_ptr info, int level) {
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) {
    jpeg_failure *failure = (jpeg_failure *)info->err;
    if (info->err->num_warnings++ == 0) (*info->err->format_message)(info, failure->message);
  }
}

int rada_decode_jpeg(const uint8_t *data, size_t size, rada_image *out, char *error, size_t errorSize) {
  memset(out, 0, sizeof(*out));
  struct jpeg_decompress_struct info;
  jpeg_failure failure;
  uint8_t *volatile pixels = NULL;
  memset(&failure, 0, sizeof(failure));
  info.err = jpeg_std_error(&failure.base);
  failure.base.error_exit = jpeg_fail;
  failure.base.emit_message = jpeg_warn;
  if (setjmp(failure.jump)) {
    int unsupported = jpeg_unsupported(&failure.base, error, errorSize);
    if (!unsupported) snprintf(error, errorSize, "%s", failure.message);
    jpeg_destroy_decompress(&info);
    free(pixels);
    return unsupported ? RADA_IMAGE_UNSUPPORTED : -1;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, (unsigned long)size);
  jpeg_read_header(&info, TRUE);
  if (too_many_pixels(info.image_width, info.image_height, error, errorSize)) {
    jpeg_destroy_decompress(&info);
    return RADA_IMAGE_TOO_LARGE;
  }
  // libjpeg guesses the colour space from the component count and the JFIF / Adobe APP14 markers (Adobe
  // transform 2 = YCCK, otherwise 4 components = CMYK), as it does inside Pillow.
  int isCMYK = 0;
  if (info.jpeg_color_space == JCS_GRAYSCALE) {
    info.out_color_space = JCS_GRAYSCALE;
  } else if (info.jpeg_color_space == JCS_YCbCr || info.jpeg_color_space == JCS_RGB) {
    info.out_color_space = JCS_RGB;
  } else if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    info.out_color_space = JCS_CMYK;  // libjpeg converts YCCK to CMYK itself
    isCMYK = 1;
  } else {
    snprintf(error, errorSize, "colour space with %d components, neither gray, RGB/YCbCr nor CMYK/YCCK",
             info.num_components);
    jpeg_destroy_decompress(&info);
    return RADA_IMAGE_UNSUPPORTED;
  }
  jpeg_start_decompress(&info);
  int channels = info.output_components;
  size_t stride = (size_t)info.output_width * (size_t)channels;
  pixels = malloc(stride * info.output_height);
  if (!pixels) {
    snprintf(error, errorSize, "out of memory for %ux%u pixels", info.output_width, info.output_height);
    jpeg_destroy_decompress(&info);
    return -1;
  }
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = pixels + stride * info.output_scanline;
    jpeg_read_scanlines(&info, &row, 1);
  }
  if (failure.base.num_warnings > 0) {
    snprintf(error, errorSize, "%s", failure.message);
    jpeg_destroy_decompress(&info);
    free(pixels);
    return -1;
  }
  jpeg_finish_decompress(&info);
  if (isCMYK) {
    // Pillow opens every 4-component JPEG with raw mode "CMYK;I" ("assume adobe conventions": Photoshop
    // stores CMYK inverted), with or without an Adobe marker, and unpacks it as 255 - v.
    size_t count = stride * info.output_height;
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(255 - pixels[i]);
  }
  out->width = (int)info.output_width;
  out->height = (int)info.output_height;
  out->channels = channels;
  out->bitDepth = 8;
  out->isCMYK = isCMYK;
  out->pixels = pixels;
  jpeg_destroy_decompress(&info);
  return 0;
}

// ---------------------------------------------------------------- PNG

typedef struct {
  const uint8_t *data;
  size_t size, offset;
  jmp_buf jump;
  char message[256];
} png_source;

static void png_fail(png_structp png, png_const_charp message) {
  png_source *source = (png_source *)png_get_error_ptr(png);
  snprintf(source->message, sizeof(source->message), "%s", message);
  longjmp(source->jump, 1);
}

static void png_warn(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void png_read(png_structp png, png_bytep target, png_size_t length) {
  png_source *source = (png_source *)png_get_io_ptr(png);
  if (source->size - source->offset < length) png_error(png, "file is truncated");
  memcpy(target, source->data + source->offset, length);
  source->offset += length;
}

int rada_decode_png(const uint8_t *data, size_t size, rada_image *out, char *error, size_t errorSize) {
  memset(out, 0, sizeof(*out));
  png_source *source = calloc(1, sizeof(png_source));
  if (!source) { snprintf(error, errorSize, "out of memory"); return -1; }
  source->data = data;
  source->size = size;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, source, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  if (!png || !info) {
    snprintf(error, errorSize, "cannot initialise libpng");
    png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
    free(source);
    return -1;
  }
  if (setjmp(source->jump)) {
    snprintf(error, errorSize, "%s", source->message);
    png_destroy_read_struct(&png, &info, NULL);
    free(pixels);
    free(rows);
    free(source);
    return -1;
  }
  png_set_read_fn(png, source, png_read);
  png_read_info(png, info);
  if (too_many_pixels(png_get_image_width(png, info), png_get_image_height(png, info), error, errorSize)) {
    png_destroy_read_struct(&png, &info, NULL);
    free(source);
    return RADA_IMAGE_TOO_LARGE;
  }
  int colorType = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  int isPalette = colorType == PNG_COLOR_TYPE_PALETTE;
  int isBilevel = colorType == PNG_COLOR_TYPE_GRAY && depth == 1;
  int bitDepth = 8;
  if (isPalette) {
    png_set_packing(png);  // one index per byte; expanded below (libpng's expansion would add tRNS alpha)
  } else if (colorType == PNG_COLOR_TYPE_GRAY && depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);  // bit replication: 2-bit v -> 85 v, 4-bit v -> 17 v, as Pillow
  }
  if (depth == 16) {
    if (colorType == PNG_COLOR_TYPE_GRAY) {
      bitDepth = 16;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      png_set_swap(png);
#endif
    } else {
      png_set_strip_16(png);  // keeps the high byte, as Pillow's "RGB;16B" unpackers do
    }
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int channels = png_get_channels(png, info);
  int width = (int)png_get_image_width(png, info), height = (int)png_get_image_height(png, info);
  size_t stride = png_get_rowbytes(png, info);
  if (stride != (size_t)width * (size_t)channels * (size_t)(bitDepth / 8)) {
    snprintf(error, errorSize, "unexpected row size %zu for %dx%d with %d channels", stride, width, height, channels);
    png_destroy_read_struct(&png, &info, NULL);
    free(source);
    return -1;
  }
  pixels = malloc(stride * (size_t)height);
  rows = malloc(sizeof(png_bytep) * (size_t)height);
  if (!pixels || !rows) {
    snprintf(error, errorSize, "out of memory for %dx%d pixels", width, height);
    png_destroy_read_struct(&png, &info, NULL);
    free(pixels); free(rows); free(source);
    return -1;
  }
  for (int y = 0; y < height; y++) rows[y] = pixels + stride * (size_t)y;
  png_read_image(png, rows);  // no png_read_end: like Pillow, chunks after the image data are not needed
  if (isPalette) {
    // Indices -> palette colours (Pillow's P -> RGB: tRNS ignored, missing entries black).
    png_colorp palette = NULL;
    int entries = 0;
    png_get_PLTE(png, info, &palette, &entries);
    uint8_t *rgb = malloc((size_t)width * (size_t)height * 3);
    if (!rgb) png_error(png, "out of memory");
    for (size_t i = 0; i < (size_t)width * (size_t)height; i++) {
      int index = pixels[i];
      rgb[3 * i + 0] = index < entries ? palette[index].red : 0;
      rgb[3 * i + 1] = index < entries ? palette[index].green : 0;
      rgb[3 * i + 2] = index < entries ? palette[index].blue : 0;
    }
    free(pixels);
    pixels = rgb;
    channels = 3;
  }
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  free(source);
  out->width = width;
  out->height = height;
  out->channels = channels;
  out->bitDepth = bitDepth;
  out->isPalette = isPalette;
  out->isBilevel = isBilevel;
  out->pixels = pixels;
  return 0;
}
