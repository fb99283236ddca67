#include "io/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace rae::tensorboard {

namespace {

// Byte-wise table of the reflected Castagnoli polynomial (event files are small: no need for
// the SSE4.2 instruction).
std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

// --- protobuf wire format: just what Event needs ---------------------------------------------
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, uint32_t field, WireType w) {
  put_varint(out, (field << 3) | w);
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_double(std::string& out, uint32_t field, double v) {
  put_tag(out, field, kFixed64);
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian host (x86-64, aarch64)
  out.append(b, 8);
}
void put_float(std::string& out, uint32_t field, float v) {
  put_tag(out, field, kFixed32);
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
void put_int(std::string& out, uint32_t field, int64_t v) {
  put_tag(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));  // negative int64: ten bytes, as protobuf does
}

void put_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_le32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

// Event with the summary holding one value.
std::string event_with_value(double wall_time, int64_t step, const std::string& value) {
  std::string summary, ev;
  put_bytes(summary, 1, value);  // Summary.value
  put_double(ev, 1, wall_time);  // Event.wall_time
  put_int(ev, 2, step);          // Event.step
  put_bytes(ev, 5, summary);     // Event.summary
  return ev;
}

// Event.step of a serialized Event (-1 when absent); throws on malformed bytes.
int64_t event_step(const std::string& ev) {
  size_t i = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      RAE_CHECK(i < ev.size(), "truncated varint");
      const auto b = static_cast<unsigned char>(ev[i++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    RAE_THROW("varint longer than 10 bytes");
  };
  int64_t step = -1;
  while (i < ev.size()) {
    const uint64_t key = varint();
    const uint64_t field = key >> 3;
    switch (key & 7) {
      case kVarint: {
        const uint64_t v = varint();
        if (field == 2) step = static_cast<int64_t>(v);
        break;
      }
      case kFixed64:
        i += 8;
        break;
      case kFixed32:
        i += 4;
        break;
      case kBytes:
        i += varint();
        break;
      default:
        RAE_THROW("unsupported wire type ", key & 7);
    }
    RAE_CHECK(i <= ev.size(), "field runs past the end of the event");
  }
  return step;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc32c_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string frame_record(const std::string& data) {
  std::string out, len;
  put_le64(len, data.size());
  out += len;
  put_le32(out, masked_crc32c(len.data(), len.size()));
  out += data;
  put_le32(out, masked_crc32c(data.data(), data.size()));
  return out;
}

std::string encode_file_version_event(double wall_time) {
  std::string ev;
  put_double(ev, 1, wall_time);
  put_bytes(ev, 3, "brain.Event:2");  // Event.file_version
  return ev;
}

std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag,
                                float value) {
  std::string v;
  put_bytes(v, 1, tag);    // Value.tag
  put_float(v, 2, value);  // Value.simple_value
  return event_with_value(wall_time, step, v);
}

std::string encode_image_event(double wall_time, int64_t step, const std::string& tag, int height,
                               int width, int channels, const std::string& encoded) {
  RAE_CHECK(height > 0 && width > 0, "tensorboard image '", tag, "': bad size ", height, "x",
            width);
  RAE_CHECK(channels == 1 || channels == 3 || channels == 4, "tensorboard image '", tag,
            "': channels must be 1, 3 or 4, got ", channels);
  std::string img, v;
  put_int(img, 1, height);     // Image.height
  put_int(img, 2, width);      // Image.width
  put_int(img, 3, channels);   // Image.colorspace
  put_bytes(img, 4, encoded);  // Image.encoded_image_string
  put_bytes(v, 1, tag);
  put_bytes(v, 4, img);  // Value.image
  return event_with_value(wall_time, step, v);
}

std::vector<EventRecord> parse_event_file(const std::string& bytes, const std::string& what) {
  std::vector<EventRecord> out;
  size_t at = 0;
  while (at < bytes.size()) {
    RAE_CHECK(bytes.size() - at >= 12, what, ": truncated record header at byte ", at);
    const std::string len_bytes = bytes.substr(at, 8);
    const uint64_t len = get_le(bytes, at, 8);
    RAE_CHECK(get_le(bytes, at + 8, 4) == masked_crc32c(len_bytes.data(), 8), what,
              ": bad length checksum at byte ", at);
    RAE_CHECK(len <= bytes.size() - at - 12 && bytes.size() - at - 12 - len >= 4, what,
              ": truncated record at byte ", at);
    EventRecord r;
    r.data = bytes.substr(at + 12, len);
    RAE_CHECK(get_le(bytes, at + 12 + len, 4) == masked_crc32c(r.data.data(), r.data.size()), what,
              ": bad data checksum at byte ", at);
    try {
      r.step = event_step(r.data);
    } catch (const std::exception& e) {
      RAE_THROW(what, ": malformed event at byte ", at, ": ", e.what());
    }
    out.push_back(std::move(r));
    at += 12 + len + 4;
  }
  return out;
}

std::string filter_events(const std::string& bytes, int64_t max_step, const std::string& what) {
  // Whole records only: a writer killed mid-append leaves a partial last record.
  std::string kept;
  size_t at = 0;
  while (bytes.size() - at >= 12) {
    const uint64_t len = get_le(bytes, at, 8);
    if (len > bytes.size() - at - 12 || bytes.size() - at - 12 - len < 4) break;
    const size_t n = 12 + len + 4;
    auto recs = parse_event_file(bytes.substr(at, n), what);
    if (recs[0].step <= max_step) kept += bytes.substr(at, n);
    at += n;
  }
  return kept;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && n.rfind("events.out.tfevents.", 0) == 0)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Writer::Writer(const std::string& dir) {
  fs::create_directories(dir);
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  static std::atomic<int> serial{0};
  const double t = now_seconds();
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(t)) + "." +
                            host + "." + std::to_string(getpid()) + "." + std::to_string(serial++)))
              .string();
  f_ = std::fopen(path_.c_str(), "wb");
  RAE_CHECK(f_ != nullptr, "cannot create TensorBoard event file '", path_, "'");
  write(encode_file_version_event(t));
}

Writer::~Writer() {
  if (f_) std::fclose(f_);
}

void Writer::write(const std::string& event) {
  const std::string rec = frame_record(event);
  RAE_CHECK(std::fwrite(rec.data(), 1, rec.size(), f_) == rec.size() && std::fflush(f_) == 0,
            "write failed for '", path_, "'");
}

void Writer::add_scalar(const std::string& tag, int64_t step, double value) {
  write(encode_scalar_event(now_seconds(), step, tag, static_cast<float>(value)));
}

void Writer::add_scalars(int64_t step, const nlohmann::json& obj, const std::string& prefix,
                         const std::vector<std::string>& skip) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(skip.begin(), skip.end(), it.key()) != skip.end()) continue;
    if (it->is_number())
      add_scalar(prefix + it.key(), step, it->get<double>());
    else if (it->is_boolean())
      add_scalar(prefix + it.key(), step, it->get<bool>() ? 1.0 : 0.0);
  }
}

void Writer::add_image(const std::string& tag, int64_t step, const std::string& encoded, int height,
                       int width, int channels) {
  write(encode_image_event(now_seconds(), step, tag, height, width, channels, encoded));
}

}  // namespace rae::tensorboard
