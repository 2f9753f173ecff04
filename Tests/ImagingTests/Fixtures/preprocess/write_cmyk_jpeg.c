// Writes the JPEGs Pillow cannot write, for generate_cmyk_cases.py (CI never runs this): CMYK without the
// Adobe APP14 marker, YCCK (Adobe transform 2), optionally arithmetic-coded, and a 2-component JPEG (a colour
// space neither libjpeg nor Pillow knows). Pillow only writes CMYK with an Adobe marker (transform 0) and
// inverted samples.
// Build: cc -O2 -o write_cmyk_jpeg write_cmyk_jpeg.c -ljpeg   (libjpeg-turbo)
// Usage: write_cmyk_jpeg IN.raw WIDTH HEIGHT cmyk|ycck|two ADOBE(0|1) ARITH(0|1) QUALITY OUT.jpg
//   IN.raw: (H, W, 4) uint8 samples, (H, W, 2) for "two", written to the file as they are (no inversion).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

int main(int argc, char **argv) {
  if (argc != 9) {
    fprintf(stderr, "usage: %s IN.raw WIDTH HEIGHT cmyk|ycck ADOBE ARITH QUALITY OUT.jpg\n", argv[0]);
    return 2;
  }
  int width = atoi(argv[2]), height = atoi(argv[3]);
  int isYCCK = strcmp(argv[4], "ycck") == 0, isTwo = strcmp(argv[4], "two") == 0;
  int adobe = atoi(argv[5]), arith = atoi(argv[6]), quality = atoi(argv[7]);
  if (width <= 0 || height <= 0 || (!isYCCK && !isTwo && strcmp(argv[4], "cmyk") != 0)) {
    fprintf(stderr, "bad size or colour space\n");
    return 2;
  }
  int components = isTwo ? 2 : 4;
  size_t stride = (size_t)width * (size_t)components, size = stride * (size_t)height;
  unsigned char *pixels = malloc(size);
  FILE *in = fopen(argv[1], "rb");
  if (!pixels || !in || fread(pixels, 1, size, in) != size) {
    fprintf(stderr, "cannot read %zu bytes from %s\n", size, argv[1]);
    return 1;
  }
  fclose(in);
  FILE *out = fopen(argv[8], "wb");
  if (!out) { fprintf(stderr, "cannot write %s\n", argv[8]); return 1; }

  struct jpeg_compress_struct info;
  struct jpeg_error_mgr errors;
  info.err = jpeg_std_error(&errors);  // default handler: prints and exits on error
  jpeg_create_compress(&info);
  jpeg_stdio_dest(&info, out);
  info.image_width = (JDIMENSION)width;
  info.image_height = (JDIMENSION)height;
  info.input_components = components;
  info.in_color_space = isTwo ? JCS_UNKNOWN : JCS_CMYK;
  jpeg_set_defaults(&info);
  jpeg_set_colorspace(&info, isTwo ? JCS_UNKNOWN : isYCCK ? JCS_YCCK : JCS_CMYK);  // CMYK/YCCK: Adobe marker on
  info.write_Adobe_marker = adobe ? TRUE : FALSE;
  info.arith_code = arith ? TRUE : FALSE;
  jpeg_set_quality(&info, quality, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = pixels + stride * info.next_scanline;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  fclose(out);
  free(pixels);
  return 0;
}
