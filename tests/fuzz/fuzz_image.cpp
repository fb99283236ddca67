// libFuzzer target for the image decoders (JPEG through libjpeg-turbo, PNG through libpng): any
// input must decode to a consistent RGB image or throw rae::Error naming the file. The pixel
// limit is lowered to 2^22 (4 Mpixel, 12 MB of RGB) so that headers claiming large images stay
// cheap: allocations above -malloc_limit_mb (tests/fuzz/tests.cmake) are findings.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool limited = (rae::data::set_max_image_pixels(int64_t{1} << 22), true);
  (void)limited;
  try {
    rae::data::Image img = rae::data::decode_image(data, size, "fuzz.img");
    if (img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3) __builtin_trap();
    volatile unsigned sum = 0;  // touch every byte: ASan checks the buffer
    for (uint8_t v : img.pixels) sum = sum + v;
  } catch (const rae::Error&) {
  }
  return 0;
}
