// Writing generated images: PNG files (written atomically) and image grids, for samples,
// reconstructions and image summaries. Pixels are interleaved 8-bit RGB rows, top to bottom, as
// data::Image (image_decode.h, whose libpng encoder this module calls).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image_decode.h"

namespace rae::data {

// PNG bytes of an (height, width, 3) uint8 RGB buffer.
std::vector<uint8_t> encode_png(const uint8_t* rgb, int height, int width);
// Writes the PNG to `path` atomically (a temporary file, fsync, rename): a reader, or a rerun
// after a crash, never sees a partial image.
void write_png(const std::string& path, const uint8_t* rgb, int height, int width);
void write_png(const std::string& path, const Image& img);

// A grid of `count` equally sized RGB images (each height x width x 3, consecutive in `rgb`),
// `cols` per row, filled row by row, with `pad` pixels of `pad_value` between and around cells.
Image make_grid(const uint8_t* rgb, int count, int height, int width, int cols, int pad = 2,
                uint8_t pad_value = 255);
// The same from scattered images (null entries leave their cell blank).
Image make_grid(const std::vector<const uint8_t*>& images, int height, int width, int cols,
                int pad = 2, uint8_t pad_value = 255);

}  // namespace rae::data
