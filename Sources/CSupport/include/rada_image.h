// Image decoding shims for libjpeg-turbo and libpng. Both libraries report errors by longjmp, which Swift
// cannot do, so the decode calls live here behind setjmp and return an error message instead.
// Output: interleaved rows, top to bottom, in the mode Pillow would open the file in (see image.c).
#ifndef RADA_IMAGE_H
#define RADA_IMAGE_H
#include <stddef.h>
#include <stdint.h>

/// What a decode produced. `pixels` is malloc'ed (free with rada_image_free); NULL on error.
typedef struct {
  int width, height;
  /// Samples per pixel in `pixels`: 1 (L, 1, I;16), 2 (LA), 3 (RGB, and P expanded to RGB), 4 (RGBA, CMYK).
  int channels;
  /// 8, or 16 for 16-bit grayscale PNG (Pillow mode I;16; samples are native-endian uint16).
  int bitDepth;
  /// 1 for a palette PNG (Pillow mode P; pixels hold the palette colours, RGB).
  int isPalette;
  /// 1 for a 1-bit grayscale PNG (Pillow mode 1; pixels are 0 or 255).
  int isBilevel;
  /// 1 for a CMYK or YCCK JPEG (Pillow mode CMYK; 4 channels, inverted as Pillow's "CMYK;I" raw mode does).
  int isCMYK;
  uint8_t *pixels;
} rada_image;

/// Return value of the decoders for a well-formed file in a variant they cannot decode (12-bit or lossless
/// JPEG, an unknown colour space): `error` names the variant. Corrupt or truncated files return -1.
static const int RADA_IMAGE_UNSUPPORTED = -2;

/// Decodes a baseline, progressive or arithmetic-coded 8-bit JPEG with libjpeg-turbo's default settings (as
/// Pillow does). Grayscale stays 1 channel, YCbCr and RGB become RGB, CMYK and YCCK become inverted CMYK
/// (Pillow's mode CMYK). Returns 0, -1 with a message in `error`, or RADA_IMAGE_UNSUPPORTED.
int rada_decode_jpeg(const uint8_t *data, size_t size, rada_image *out, char *error, size_t errorSize);

/// Decodes any PNG with libpng: 16-bit colour is cut to its high byte (as Pillow does), 16-bit gray is kept,
/// palettes are expanded to RGB without tRNS, 1/2/4-bit gray is scaled to 8 bits. Returns 0 or -1.
int rada_decode_png(const uint8_t *data, size_t size, rada_image *out, char *error, size_t errorSize);

void rada_image_free(rada_image *image);

/// Returned by the decoders when the header declares more pixels than rada_image_max_pixels(), or sides more
/// than RADA_IMAGE_MAX_ASPECT:1 apart.
#define RADA_IMAGE_TOO_LARGE (-2)
#define RADA_IMAGE_MAX_ASPECT 512

/// The decoded-pixel cap against image bombs: $RADA_MAX_IMAGE_PIXELS when set to a positive integer, else 2^26.
size_t rada_image_max_pixels(void);

#endif
