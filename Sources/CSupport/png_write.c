// PNG writing through libpng's simplified API. The png_image struct is heap-allocated (libpng keeps a pointer
// to it between calls; see notes/swift-mpi-openblas.md).
#include "rada_png_write.h"
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rada_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
                   char *message, int capacity) {
  png_image *image = calloc(1, sizeof(png_image));
  if (!image) { snprintf(message, capacity, "out of memory"); return 1; }
  image->version = PNG_IMAGE_VERSION;
  image->width = (png_uint_32)width;
  image->height = (png_uint_32)height;
  image->format = channels == 1 ? PNG_FORMAT_GRAY : channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  int ok = png_image_write_to_file(image, path, 0, pixels, width * channels, NULL);
  if (!ok) snprintf(message, capacity, "%s", image->message);
  png_image_free(image);
  free(image);
  return ok ? 0 : 1;
}
