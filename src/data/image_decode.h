// Image decoding (libjpeg-turbo, libpng) to 8-bit RGB, and encoding for the dataset generator.
// The format is detected from the file's magic bytes, never its extension (ImageNet has a PNG
// named .JPEG). Grayscale and CMYK JPEGs and every PNG variant are converted to RGB exactly as
// PIL's Image.convert("RGB") does (16-bit grayscale PNGs, PIL mode "I;16", clip to 255; other
// 16-bit PNGs keep the high byte), so cached latents match a PIL-based reference pipeline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rae::data {

// Interleaved 8-bit image, rows top to bottom: pixels[(y * width + x) * channels + c].
struct Image {
  int width = 0;
  int height = 0;
  int channels = 3;
  std::vector<uint8_t> pixels;

  static Image make(int width, int height, int channels = 3);
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * channels; }
  const uint8_t* row(int y) const {
    return pixels.data() + static_cast<size_t>(y) * width * channels;
  }
};

enum class ImageFormat { Jpeg, Png, Unknown };
ImageFormat detect_image_format(const uint8_t* data, size_t size);

// Bad input, as PIL's defaults treat it: image data that ends before the image does ("image file
// is truncated": PIL's ImageFile.LOAD_TRUNCATED_IMAGES = False) and data the decoder cannot decode
// are errors naming the file; recoverable corruption that PIL decodes with a libjpeg warning is
// decoded too. A missing PNG trailer after complete image data is accepted (as PIL); a PNG chunk
// CRC mismatch is an error (PIL ignores IDAT CRCs). Images with more than max_image_pixels()
// pixels are refused from the header, before any pixel buffer is allocated (PIL's
// decompression-bomb check: Image.MAX_IMAGE_PIXELS = 89,478,485, where PIL warns, erroring at
// twice that; here the limit itself is the error).
constexpr int64_t kDefaultMaxImagePixels = 89478485;  // PIL: 1024 * 1024 * 1024 // 4 // 3
int64_t max_image_pixels();
void set_max_image_pixels(int64_t pixels);  // 0: no limit (process-wide)

// Decodes a JPEG or PNG held in memory to RGB (3 channels). `name` is used in error messages.
Image decode_image(const uint8_t* data, size_t size, const std::string& name);
std::vector<uint8_t> read_file_bytes(const std::string& path);
Image decode_image_file(const std::string& path);

// Encoders for the procedural dataset. `jpeg_cmyk` writes an Adobe-style (inverted) CMYK JPEG
// from an RGB image; grayscale input (channels 1) writes a grayscale JPEG.
enum class JpegColor { Rgb, Gray, Cmyk };
std::vector<uint8_t> encode_jpeg(const Image& img, int quality, JpegColor color = JpegColor::Rgb);
std::vector<uint8_t> encode_png(const Image& img);
// Writes `bytes` to `path` atomically (core/atomic_file.h: a complete file or none, never half
// an image).
void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace rae::data
