#include "data/image_decode.h"

#include <jpeglib.h>
// (after jpeglib.h)
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>

#include "core/atomic_file.h"
#include "core/error.h"

namespace rae::data {

Image Image::make(int width, int height, int channels) {
  RAE_CHECK(width > 0 && height > 0 && (channels == 1 || channels == 3 || channels == 4),
            "Image::make: bad size ", width, "x", height, "x", channels);
  Image img;
  img.width = width;
  img.height = height;
  img.channels = channels;
  img.pixels.assign(static_cast<size_t>(width) * height * channels, 0);
  return img;
}

ImageFormat detect_image_format(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && std::memcmp(d, kPng, 8) == 0) return ImageFormat::Png;
  return ImageFormat::Unknown;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  RAE_CHECK(f.good(), "cannot open ", path);
  std::streamsize n = f.tellg();
  f.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  RAE_CHECK(n == 0 || f.read(reinterpret_cast<char*>(bytes.data()), n), "cannot read ", path);
  return bytes;
}

void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_file_atomic(path,
                    std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

namespace {
std::atomic<int64_t> g_max_image_pixels{kDefaultMaxImagePixels};
}  // namespace

int64_t max_image_pixels() {
  return g_max_image_pixels.load(std::memory_order_relaxed);
}

void set_max_image_pixels(int64_t pixels) {
  RAE_CHECK(pixels >= 0, "the image pixel limit must be >= 0 (0: none), got ", pixels);
  g_max_image_pixels.store(pixels, std::memory_order_relaxed);
}

namespace {

// Fills `message` and returns false when a w x h image is over the pixel limit.
bool within_pixel_limit(uint64_t w, uint64_t h, char* message, size_t size) {
  const int64_t limit = max_image_pixels();
  if (limit == 0 || w * h <= static_cast<uint64_t>(limit)) return true;
  std::snprintf(message, size,
                "image size %llux%llu (%llu pixels) exceeds the limit of %lld pixels (a "
                "decompression bomb? `rae cache --max-image-pixels` changes the limit)",
                static_cast<unsigned long long>(w), static_cast<unsigned long long>(h),
                static_cast<unsigned long long>(w * h), static_cast<long long>(limit));
  return false;
}

// libjpeg reports fatal errors through error_exit; we longjmp back out of the C code (no C++
// object with a destructor lives in the frames skipped) and throw from the C++ side.
struct JpegErr {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}
// Warnings (level -1) about corrupt data are ignored, as PIL does, except running out of data:
// the memory source reports that as JWRN_JPEG_EOF and would pad the image with gray, where PIL
// stops with "image file is truncated".
void jpeg_emit(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
    std::snprintf(err->message, JMSG_LENGTH_MAX,
                  "image file is truncated (the JPEG data ends before the image does)");
    longjmp(err->jump, 1);
  }
}

// PIL's MULDIV255: a * b / 255 with rounding.
inline int muldiv255(int a, int b) {
  int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// Returns 0 on success; fills `out` (already an empty Image). Kept free of C++ destructors
// between setjmp and the libjpeg calls.
int decode_jpeg_c(const uint8_t* data, size_t size, Image* out, std::vector<uint8_t>* row_buf,
                  char* message) {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit;
  if (setjmp(err.jump)) {
    std::strncpy(message, err.message, JMSG_LENGTH_MAX);
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (!within_pixel_limit(cinfo.image_width, cinfo.image_height, message, JMSG_LENGTH_MAX)) {
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  // Gray and YCbCr decode straight to RGB (gray is replicated, as PIL's L -> RGB).
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  cinfo.dct_method = JDCT_ISLOW;  // PIL's default
  jpeg_start_decompress(&cinfo);
  const int w = static_cast<int>(cinfo.output_width), h = static_cast<int>(cinfo.output_height);
  const int nc = cinfo.output_components;
  if (w <= 0 || h <= 0 || (cmyk ? nc != 4 : nc != 3)) {
    std::snprintf(message, JMSG_LENGTH_MAX, "unsupported JPEG layout (%d components)", nc);
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  out->width = w;
  out->height = h;
  out->channels = 3;
  out->pixels.resize(static_cast<size_t>(w) * h * 3);
  row_buf->resize(static_cast<size_t>(w) * nc);
  while (cinfo.output_scanline < cinfo.output_height) {
    int y = static_cast<int>(cinfo.output_scanline);
    uint8_t* dst = out->pixels.data() + static_cast<size_t>(y) * w * 3;
    JSAMPROW rowp = cmyk ? row_buf->data() : dst;
    jpeg_read_scanlines(&cinfo, &rowp, 1);
    if (cmyk) {
      // PIL reads CMYK JPEGs as Adobe-inverted ("CMYK;I"), then converts CMYK -> RGB with
      // r = (255 - k) - c * (255 - k) / 255.
      const uint8_t* s = row_buf->data();
      for (int x = 0; x < w; ++x) {
        int c = 255 - s[4 * x], m = 255 - s[4 * x + 1], yy = 255 - s[4 * x + 2];
        int nk = s[4 * x + 3];  // 255 - k with k = 255 - raw
        dst[3 * x] = static_cast<uint8_t>(nk - muldiv255(c, nk));
        dst[3 * x + 1] = static_cast<uint8_t>(nk - muldiv255(m, nk));
        dst[3 * x + 2] = static_cast<uint8_t>(nk - muldiv255(yy, nk));
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
  Image img;
  std::vector<uint8_t> row_buf;
  char message[JMSG_LENGTH_MAX] = {0};
  if (decode_jpeg_c(data, size, &img, &row_buf, message) != 0)
    RAE_THROW("cannot decode JPEG ", name, ": ", message);
  return img;
}

constexpr size_t kPngMessageBytes = 256;

struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
  volatile bool ended = false;  // a read ran past the end (read after a longjmp)
};

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) {
    r->ended = true;
    png_error(png, "image file is truncated (the PNG data ends before the image does)");
  }
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* message = static_cast<char*>(png_get_error_ptr(png));
  std::strncpy(message, msg, kPngMessageBytes - 1);
  png_longjmp(png, 1);
}
void png_warn_fn(png_structp, png_const_charp) {}

// 16-bit grayscale (big-endian samples) -> 8 bits clipped to 255, as PIL's I;16 -> L/RGB.
int finish_png_rows(std::vector<uint8_t>* raw, int w, int h, int ch, bool gray16, int* w_out,
                    int* h_out, int* ch_out) {
  if (gray16) {
    const size_t n = static_cast<size_t>(w) * h;
    uint8_t* p = raw->data();
    for (size_t i = 0; i < n; ++i) {
      const unsigned v = (static_cast<unsigned>(p[2 * i]) << 8) | p[2 * i + 1];
      p[i] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
    raw->resize(n);
  }
  *w_out = w;
  *h_out = h;
  *ch_out = ch;
  return 0;
}

int decode_png_c(const uint8_t* data, size_t size, std::vector<uint8_t>* raw, int* w_out,
                 int* h_out, int* ch_out, char* message) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, message, png_error_fn, png_warn_fn);
  if (!png) return 1;
  png_infop info = png_create_info_struct(png);
  PngReader reader{data, size, 0};
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  png_set_read_fn(png, &reader, png_read_mem);
  // A CRC mismatch in any chunk is an error (libpng only warns for ancillary chunks; PIL refuses
  // those read before the image data).
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  if (!within_pixel_limit(png_get_image_width(png, info), png_get_image_height(png, info), message,
                          kPngMessageBytes)) {
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  // 16-bit: the high byte (PIL's "RGB;16B", "LA;16B"), except plain grayscale, which PIL opens
  // as "I;16" and clips to 255 when converting: kept 16-bit here (big-endian) and clipped below.
  const bool gray16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
  if (depth == 16 && !gray16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int w = static_cast<int>(png_get_image_width(png, info));
  int h = static_cast<int>(png_get_image_height(png, info));
  int ch = png_get_channels(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != static_cast<size_t>(w) * ch * (gray16 ? 2 : 1))
    png_error(png, "unexpected PNG row layout");
  raw->resize(rowbytes * h);
  // Freed below (no longjmp past); volatile: read after a longjmp.
  std::vector<png_bytep>* volatile rows = new std::vector<png_bytep>(h);
  for (int y = 0; y < h; ++y) (*rows)[y] = raw->data() + rowbytes * y;
  if (setjmp(png_jmpbuf(png))) {
    delete rows;
    png_destroy_read_struct(&png, &info, nullptr);
    return 1;
  }
  png_read_image(png, rows->data());
  delete rows;
  // After the last row: the rest of the compressed stream and the trailing chunks. Corruption
  // there is an error; data that simply ends (no IEND) is accepted, as PIL does.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return reader.ended ? finish_png_rows(raw, w, h, ch, gray16, w_out, h_out, ch_out) : 1;
  }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return finish_png_rows(raw, w, h, ch, gray16, w_out, h_out, ch_out);
}

Image decode_png(const uint8_t* data, size_t size, const std::string& name) {
  std::vector<uint8_t> raw;
  int w = 0, h = 0, ch = 0;
  char message[kPngMessageBytes] = {0};
  if (decode_png_c(data, size, &raw, &w, &h, &ch, message) != 0)
    RAE_THROW("cannot decode PNG ", name, ": ", message);
  RAE_CHECK(w > 0 && h > 0 && ch >= 1 && ch <= 4, "unsupported PNG layout in ", name);
  // To RGB as PIL's convert("RGB"): gray replicated, alpha dropped (not composited).
  Image img = Image::make(w, h, 3);
  const size_t n = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* s = raw.data() + i * ch;
    uint8_t* d = img.pixels.data() + i * 3;
    if (ch <= 2) {
      d[0] = d[1] = d[2] = s[0];
    } else {
      d[0] = s[0], d[1] = s[1], d[2] = s[2];
    }
  }
  return img;
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size, const std::string& name) {
  try {
    switch (detect_image_format(data, size)) {
      case ImageFormat::Jpeg:
        return decode_jpeg(data, size, name);
      case ImageFormat::Png:
        return decode_png(data, size, name);
      default:
        RAE_THROW("unknown image format (not JPEG or PNG by its magic bytes): ", name);
    }
  } catch (const std::bad_alloc&) {  // with the pixel limit off (0): name the file at least
    RAE_THROW(name, ": out of memory decoding the image (the pixel limit is ", max_image_pixels(),
              ", 0 = none)");
  }
}

Image decode_image_file(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

// ---- encoders (dataset generator) ----

namespace {

int encode_jpeg_c(const Image* img, int quality, JpegColor color, const uint8_t* converted,
                  unsigned char** buf, unsigned long* size, char* message) {
  jpeg_compress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  if (setjmp(err.jump)) {
    std::strncpy(message, err.message, JMSG_LENGTH_MAX);
    jpeg_destroy_compress(&cinfo);
    return 1;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, buf, size);
  cinfo.image_width = img->width;
  cinfo.image_height = img->height;
  int nc = color == JpegColor::Gray ? 1 : color == JpegColor::Cmyk ? 4 : 3;
  cinfo.input_components = nc;
  cinfo.in_color_space = color == JpegColor::Gray   ? JCS_GRAYSCALE
                         : color == JpegColor::Cmyk ? JCS_CMYK
                                                    : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(converted +
                                        static_cast<size_t>(cinfo.next_scanline) * img->width * nc);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return 0;
}

}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& img, int quality, JpegColor color) {
  RAE_CHECK(img.channels == 3 || (img.channels == 1 && color == JpegColor::Gray),
            "encode_jpeg: need an RGB image (or gray for JpegColor::Gray)");
  const size_t n = static_cast<size_t>(img.width) * img.height;
  std::vector<uint8_t> conv;
  if (color == JpegColor::Rgb) {
    conv = img.pixels;
  } else if (color == JpegColor::Gray) {
    if (img.channels == 1) {
      conv = img.pixels;
    } else {
      conv.resize(n);
      for (size_t i = 0; i < n; ++i) {
        const uint8_t* p = img.pixels.data() + 3 * i;
        conv[i] = static_cast<uint8_t>((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
      }
    }
  } else {
    // Naive RGB -> CMYK, stored Adobe-inverted (what readers, PIL included, assume).
    conv.resize(4 * n);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = img.pixels.data() + 3 * i;
      // Inverse of the reader's r = (255 - c) * (255 - k) / 255 with k = 255 - max(r, g, b).
      int mx = std::max({p[0], p[1], p[2]});
      int k = 255 - mx;
      auto comp = [mx](int v) { return mx == 0 ? 0 : 255 - (255 * v + mx / 2) / mx; };
      int c = comp(p[0]), m = comp(p[1]), y = comp(p[2]);
      conv[4 * i] = static_cast<uint8_t>(255 - c);
      conv[4 * i + 1] = static_cast<uint8_t>(255 - m);
      conv[4 * i + 2] = static_cast<uint8_t>(255 - y);
      conv[4 * i + 3] = static_cast<uint8_t>(255 - k);
    }
  }
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  char message[JMSG_LENGTH_MAX] = {0};
  int rc = encode_jpeg_c(&img, quality, color, conv.data(), &buf, &size, message);
  std::vector<uint8_t> out;
  if (rc == 0) out.assign(buf, buf + size);
  std::free(buf);
  if (rc != 0) RAE_THROW("JPEG encoding failed: ", message);
  return out;
}

namespace {
void png_write_mem(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void png_flush_mem(png_structp) {}

int encode_png_c(const Image* img, std::vector<uint8_t>* out, png_bytep* rows, char* message) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, message, png_error_fn, png_warn_fn);
  if (!png) return 1;
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return 1;
  }
  png_set_write_fn(png, out, png_write_mem, png_flush_mem);
  int color = img->channels == 1   ? PNG_COLOR_TYPE_GRAY
              : img->channels == 4 ? PNG_COLOR_TYPE_RGBA
                                   : PNG_COLOR_TYPE_RGB;
  png_set_IHDR(png, info, img->width, img->height, 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return 0;
}
}  // namespace

std::vector<uint8_t> encode_png(const Image& img) {
  std::vector<png_bytep> rows(img.height);
  for (int y = 0; y < img.height; ++y) rows[y] = const_cast<png_bytep>(img.row(y));
  std::vector<uint8_t> out;
  char message[kPngMessageBytes] = {0};
  if (encode_png_c(&img, &out, rows.data(), message) != 0)
    RAE_THROW("PNG encoding failed: ", message);
  return out;
}

}  // namespace rae::data
