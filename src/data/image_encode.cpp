#include "data/image_encode.h"

#include <algorithm>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"

namespace rae::data {

namespace {
Image wrap_rgb(const uint8_t* rgb, int height, int width) {
  RAE_CHECK(height > 0 && width > 0, "image of ", height, " x ", width, " pixels");
  Image img = Image::make(width, height, 3);
  std::memcpy(img.pixels.data(), rgb, img.pixels.size());
  return img;
}
}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* rgb, int height, int width) {
  return encode_png(wrap_rgb(rgb, height, width));
}

void write_png(const std::string& path, const Image& img) {
  std::vector<uint8_t> bytes = encode_png(img);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

void write_png(const std::string& path, const uint8_t* rgb, int height, int width) {
  write_png(path, wrap_rgb(rgb, height, width));
}

Image make_grid(const std::vector<const uint8_t*>& images, int height, int width, int cols, int pad,
                uint8_t pad_value) {
  const int count = static_cast<int>(images.size());
  RAE_CHECK(count > 0 && cols > 0 && height > 0 && width > 0 && pad >= 0, "make_grid: ", count,
            " images of ", height, " x ", width, " in ", cols, " columns, pad ", pad);
  const int ncols = std::min(cols, count), nrows = (count + cols - 1) / cols;
  Image g = Image::make(pad + ncols * (width + pad), pad + nrows * (height + pad), 3);
  std::fill(g.pixels.begin(), g.pixels.end(), pad_value);
  const size_t row_bytes = static_cast<size_t>(width) * 3;
  for (int i = 0; i < count; ++i) {
    if (!images[i]) continue;
    const int y0 = pad + (i / cols) * (height + pad), x0 = pad + (i % cols) * (width + pad);
    for (int y = 0; y < height; ++y)
      std::memcpy(g.row(y0 + y) + static_cast<size_t>(x0) * 3,
                  images[i] + static_cast<size_t>(y) * row_bytes, row_bytes);
  }
  return g;
}

Image make_grid(const uint8_t* rgb, int count, int height, int width, int cols, int pad,
                uint8_t pad_value) {
  std::vector<const uint8_t*> ptrs(count);
  const size_t image_bytes = static_cast<size_t>(height) * width * 3;
  for (int i = 0; i < count; ++i) ptrs[i] = rgb + i * image_bytes;
  return make_grid(ptrs, height, width, cols, pad, pad_value);
}

}  // namespace rae::data
