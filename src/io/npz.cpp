// NumPy .npz reader and streaming writer (zip archive of .npy arrays, ZIP64). See npz.h.
#include "io/npz.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace rae::npz {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint16_t kZip64Extra = 0x0001, kPaddingExtra = 0xa11e;
constexpr uint16_t kZipVersion = 45;  // ZIP64
constexpr size_t kAlign = 64;         // array data starts 64-byte aligned in archives we write
constexpr size_t kMaxNpyHeader = 1 << 20;

std::string errno_text() {
  return std::strerror(errno);
}

uint16_t rd16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t rd32(const uint8_t* p) {
  return rd16(p) | (static_cast<uint32_t>(rd16(p + 2)) << 16);
}
uint64_t rd64(const uint8_t* p) {
  return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32);
}

void put16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v & 0xffff));
  put16(s, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& s, uint64_t v) {
  put32(s, static_cast<uint32_t>(v & 0xffffffffu));
  put32(s, static_cast<uint32_t>(v >> 32));
}

DType dtype_from_descr(const std::string& d, const std::string& where) {
  if (d == "|u1" || d == "<u1" || d == "u1") return DType::U8;
  if (d == "<f4") return DType::F32;
  if (d == "<f8") return DType::F64;
  if (d == "<f2") return DType::F16;
  if (d == "<i4") return DType::I32;
  if (d == "<i8") return DType::I64;
  RAE_THROW(where, ": unsupported NumPy dtype '", d,
            "' (supported: |u1, <f2, <f4, <f8, <i4, <i8; little-endian, C order)");
}

std::string shape_text(const Shape& s) {
  return s.str();
}

// The value after 'key': in a .npy header dict (the text up to the next ',' or '}' at depth 0, or
// the quoted string / parenthesised tuple).
std::string dict_value(const std::string& h, const std::string& key, const std::string& where) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) RAE_THROW(where, ": .npy header has no '", key, "': ", h);
  size_t p = h.find(':', k);
  if (p == std::string::npos) RAE_THROW(where, ": malformed .npy header: ", h);
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  if (p >= h.size()) RAE_THROW(where, ": malformed .npy header: ", h);
  char open = h[p];
  if (open == '\'' || open == '"') {
    size_t e = h.find(open, p + 1);
    if (e == std::string::npos) RAE_THROW(where, ": malformed .npy header: ", h);
    return h.substr(p + 1, e - p - 1);
  }
  if (open == '(') {
    size_t e = h.find(')', p);
    if (e == std::string::npos) RAE_THROW(where, ": malformed .npy header: ", h);
    return h.substr(p, e - p + 1);
  }
  size_t e = h.find_first_of(",}", p);
  if (e == std::string::npos) RAE_THROW(where, ": malformed .npy header: ", h);
  return h.substr(p, e - p);
}

Shape parse_shape(const std::string& tuple, const std::string& where) {
  std::vector<int64_t> dims;
  size_t i = 1;  // after '('
  while (i < tuple.size()) {
    while (i < tuple.size() && (tuple[i] == ' ' || tuple[i] == ',')) ++i;
    if (i >= tuple.size() || tuple[i] == ')') break;
    size_t end = i;
    while (end < tuple.size() && tuple[end] >= '0' && tuple[end] <= '9') ++end;
    if (end == i || end - i > 15) RAE_THROW(where, ": bad shape ", tuple, " in .npy header");
    dims.push_back(std::stoll(tuple.substr(i, end - i)));
    i = end;
  }
  if (dims.size() > kMaxDims) RAE_THROW(where, ": shape ", tuple, " has more than 8 dimensions");
  return Shape(dims.begin(), dims.end());
}

// Parses a .npy header from `p` (at least `avail` bytes); returns the header length (data offset
// within the .npy) and fills dtype and shape.
size_t parse_npy_header(const uint8_t* p, size_t avail, const std::string& where, ArrayInfo* info) {
  static const char kMagic[] = "\x93NUMPY";
  if (avail < 10 || std::memcmp(p, kMagic, 6) != 0) RAE_THROW(where, ": not a .npy array");
  int major = p[6];
  size_t hlen, pre;
  if (major == 1) {
    hlen = rd16(p + 8), pre = 10;
  } else if (major == 2 || major == 3) {
    if (avail < 12) RAE_THROW(where, ": truncated .npy header");
    hlen = rd32(p + 8), pre = 12;
  } else {
    RAE_THROW(where, ": unsupported .npy format version ", major);
  }
  if (hlen > kMaxNpyHeader || pre + hlen > avail) RAE_THROW(where, ": truncated .npy header");
  std::string h(reinterpret_cast<const char*>(p + pre), hlen);
  std::string fortran = dict_value(h, "fortran_order", where);
  if (fortran.find("True") != std::string::npos)
    RAE_THROW(where, ": Fortran-order arrays are not supported (save with C order)");
  info->dtype = dtype_from_descr(dict_value(h, "descr", where), where);
  info->shape = parse_shape(dict_value(h, "shape", where), where);
  // The byte count, refusing shapes whose product overflows (a corrupt or hostile header).
  uint64_t bytes = dtype_size(info->dtype);
  for (int64_t d : info->shape) {
    if (d != 0 && bytes > (uint64_t(1) << 62) / static_cast<uint64_t>(d))
      RAE_THROW(where, ": shape ", info->shape.str(), " is too large");
    bytes *= static_cast<uint64_t>(d);
  }
  info->data_bytes = bytes;
  return pre + hlen;
}

std::string npy_header(DType dtype, const Shape& shape) {
  // NumPy's tuple spelling: "()", "(5,)", "(5, 7, 3)".
  std::string dims = "(";
  for (int i = 0; i < shape.size(); ++i) {
    if (i) dims += ", ";
    dims += std::to_string(shape[i]);
  }
  if (shape.size() == 1) dims += ",";
  dims += ")";
  std::string dict =
      "{'descr': '" + numpy_descr(dtype) + "', 'fortran_order': False, 'shape': " + dims + ", }";
  // Version 1.0: magic (6) + version (2) + length (2) + dict padded with spaces and ended with a
  // newline so the data starts at a multiple of 64 bytes (as NumPy does).
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + kAlign - 1) / kAlign * kAlign;
  RAE_CHECK(padded - 10 <= 0xffff, "npz: .npy header too long for shape ", shape_text(shape));
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<uint16_t>(dict.size()));
  return out + dict;
}

}  // namespace

std::string numpy_descr(DType dtype) {
  switch (dtype) {
    case DType::U8:
      return "|u1";
    case DType::F32:
      return "<f4";
    case DType::F64:
      return "<f8";
    case DType::F16:
      return "<f2";
    case DType::I32:
      return "<i4";
    case DType::I64:
      return "<i8";
    case DType::BF16:
      break;
  }
  RAE_THROW("npz: dtype ", dtype_name(dtype), " has no NumPy equivalent");
}

// ---------------------------------------------------------------------------------------------
// Reader

Reader::Reader(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) RAE_THROW("npz file '", path, "': cannot open: ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    RAE_THROW("npz file '", path, "': stat failed: ", errno_text());
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ < 22) {
    ::close(fd);
    RAE_THROW("npz file '", path, "': not a zip archive (", size_, " bytes)");
  }
  void* addr = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (addr == MAP_FAILED) RAE_THROW("npz file '", path, "': mmap failed: ", errno_text());
  uint64_t size = size_;
  mapping_ = std::shared_ptr<void>(addr, [size](void* a) { ::munmap(a, size); });
  base_ = static_cast<const uint8_t*>(addr);
  const std::string where = "npz file '" + path + "'";

  // End of central directory: the last signature within the final 64 KiB + 22 bytes.
  int64_t eocd = -1;
  int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(size_) - 22 - 65535);
  for (int64_t p = static_cast<int64_t>(size_) - 22; p >= lo; --p)
    if (rd32(base_ + p) == kEndSig) {
      eocd = p;
      break;
    }
  if (eocd < 0) RAE_THROW(where, ": not a zip archive (no end of central directory)");
  uint64_t count = rd16(base_ + eocd + 10);
  uint64_t cd_size = rd32(base_ + eocd + 12);
  uint64_t cd_offset = rd32(base_ + eocd + 16);
  if (eocd >= 20 && rd32(base_ + eocd - 20) == kLocator64Sig) {
    uint64_t rec = rd64(base_ + eocd - 20 + 8);
    if (rec + 56 > size_ || rd32(base_ + rec) != kEnd64Sig)
      RAE_THROW(where, ": corrupt ZIP64 end of central directory");
    count = rd64(base_ + rec + 32);
    cd_size = rd64(base_ + rec + 40);
    cd_offset = rd64(base_ + rec + 48);
  }
  if (cd_offset > size_ || cd_size > size_ - cd_offset)
    RAE_THROW(where, ": central directory out of bounds (truncated file?)");

  uint64_t p = cd_offset;
  for (uint64_t i = 0; i < count; ++i) {
    if (p + 46 > cd_offset + cd_size || rd32(base_ + p) != kCentralSig)
      RAE_THROW(where, ": corrupt central directory entry ", i);
    const uint8_t* c = base_ + p;
    uint16_t flags = rd16(c + 8), method = rd16(c + 10);
    Entry e;
    e.crc = rd32(c + 16);
    e.payload_bytes = rd32(c + 20);
    e.uncompressed = rd32(c + 24);
    uint16_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
    uint64_t local = rd32(c + 42);
    if (p + 46 + nlen + xlen + clen > cd_offset + cd_size)
      RAE_THROW(where, ": corrupt central directory entry ", i);
    std::string fname(reinterpret_cast<const char*>(c + 46), nlen);
    // ZIP64 extra: the fields whose 32-bit value is 0xFFFFFFFF, in this order.
    for (const uint8_t* x = c + 46 + nlen; x + 4 <= c + 46 + nlen + xlen;) {
      uint16_t id = rd16(x), len = rd16(x + 2);
      if (x + 4 + len > c + 46 + nlen + xlen) break;
      if (id == kZip64Extra) {
        const uint8_t* f = x + 4;
        const uint8_t* fend = x + 4 + len;
        if (e.uncompressed == 0xffffffffu && f + 8 <= fend) e.uncompressed = rd64(f), f += 8;
        if (e.payload_bytes == 0xffffffffu && f + 8 <= fend) e.payload_bytes = rd64(f), f += 8;
        if (local == 0xffffffffu && f + 8 <= fend) local = rd64(f), f += 8;
      }
      x += 4 + len;
    }
    p += 46 + nlen + xlen + clen;
    std::string key = fname.size() > 4 && fname.compare(fname.size() - 4, 4, ".npy") == 0
                          ? fname.substr(0, fname.size() - 4)
                          : fname;
    const std::string ewhere = where + ", key '" + key + "'";
    if (flags & 1) RAE_THROW(ewhere, ": encrypted entries are not supported");
    if (method != 0 && method != 8)
      RAE_THROW(ewhere, ": unsupported compression method ", method, " (stored or deflate only)");
    if (local + 30 > size_ || rd32(base_ + local) != kLocalSig)
      RAE_THROW(ewhere, ": corrupt local header (truncated file?)");
    e.payload_offset = local + 30 + rd16(base_ + local + 26) + rd16(base_ + local + 28);
    if (e.payload_offset > size_ || e.payload_bytes > size_ - e.payload_offset)
      RAE_THROW(ewhere, ": entry data out of bounds (truncated file?)");
    e.info.name = key;
    e.info.compressed = method == 8;
    size_t header;
    if (!e.info.compressed) {
      if (e.payload_bytes != e.uncompressed) RAE_THROW(ewhere, ": stored entry size mismatch");
      header = parse_npy_header(base_ + e.payload_offset, e.payload_bytes, ewhere, &e.info);
    } else {
      // Inflate just enough of the entry to read the .npy header.
      std::vector<uint8_t> head(std::min<uint64_t>(e.uncompressed, kMaxNpyHeader + 16));
      z_stream zs{};
      if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) RAE_THROW(ewhere, ": zlib init failed");
      zs.next_in = const_cast<Bytef*>(base_ + e.payload_offset);
      zs.avail_in = static_cast<uInt>(std::min<uint64_t>(e.payload_bytes, 1u << 30));
      zs.next_out = head.data();
      zs.avail_out = static_cast<uInt>(head.size());
      int rc = inflate(&zs, Z_SYNC_FLUSH);
      size_t got = head.size() - zs.avail_out;
      inflateEnd(&zs);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        RAE_THROW(ewhere, ": corrupt deflate data");
      header = parse_npy_header(head.data(), got, ewhere, &e.info);
    }
    if (header + e.info.data_bytes != e.uncompressed)
      RAE_THROW(ewhere, ": array of shape ", shape_text(e.info.shape), " needs ", e.info.data_bytes,
                " bytes but the entry holds ", e.uncompressed - header);
    e.data_offset = e.payload_offset + header;
    entries_.push_back(e);
    arrays_.push_back(e.info);
  }
}

bool Reader::contains(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.info.name == name) return true;
  return false;
}

const Reader::Entry& Reader::entry(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.info.name == name) return e;
  std::string keys;
  for (const auto& e : entries_) keys += (keys.empty() ? "" : ", ") + e.info.name;
  RAE_THROW("npz file '", path_, "': no array '", name, "' (it has: ", keys, ")");
}

const ArrayInfo& Reader::info(const std::string& name) const {
  return entry(name).info;
}

Tensor Reader::inflate_entry(const Entry& e) const {
  const std::string where = "npz file '" + path_ + "', key '" + e.info.name + "'";
  std::vector<uint8_t> npy(e.uncompressed);
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) RAE_THROW(where, ": zlib init failed");
  const uint8_t* in = base_ + e.payload_offset;
  uint64_t in_left = e.payload_bytes, out_done = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
    uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(npy.size() - out_done, 1u << 30));
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = in_chunk;
    zs.next_out = npy.data() + out_done;
    zs.avail_out = out_chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    in += in_chunk - zs.avail_in, in_left -= in_chunk - zs.avail_in;
    out_done += out_chunk - zs.avail_out;
    if (rc == Z_BUF_ERROR && (in_left == 0 || out_done == npy.size())) break;
  }
  inflateEnd(&zs);
  if ((rc != Z_STREAM_END && rc != Z_BUF_ERROR) || out_done != npy.size())
    RAE_THROW(where, ": corrupt deflate data");
  uint32_t crc = 0;
  for (uint64_t off = 0; off < npy.size(); off += 1u << 30)
    crc = static_cast<uint32_t>(crc32(
        crc, npy.data() + off, static_cast<uInt>(std::min<uint64_t>(npy.size() - off, 1u << 30))));
  if (crc != e.crc) RAE_THROW(where, ": CRC-32 mismatch (corrupt archive)");
  Tensor t = Tensor::empty(e.info.shape, e.info.dtype);
  std::memcpy(t.raw(), npy.data() + (npy.size() - e.info.data_bytes), e.info.data_bytes);
  return t;
}

Tensor Reader::read(const std::string& name) const {
  const Entry& e = entry(name);
  if (e.info.compressed) return inflate_entry(e);
  return read_rows(name, 0, e.info.shape.size() ? e.info.shape[0] : 1);
}

Tensor Reader::read(const std::string& name, DType dtype, const Shape& shape) const {
  const ArrayInfo& a = info(name);
  bool ok = a.dtype == dtype && a.shape.size() == shape.size();
  for (int i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == a.shape[i];
  if (!ok) {
    std::string want = "(";
    for (int i = 0; i < shape.size(); ++i)
      want += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
    RAE_THROW("npz file '", path_, "', key '", name, "': expected ", numpy_descr(dtype), " ", want,
              "), found ", numpy_descr(a.dtype), " ", shape_text(a.shape));
  }
  return read(name);
}

Tensor Reader::read_rows(const std::string& name, int64_t begin, int64_t count) const {
  const Entry& e = entry(name);
  const std::string where = "npz file '" + path_ + "', key '" + name + "'";
  if (e.info.shape.size() == 0) {  // a scalar: one "row"
    RAE_CHECK(begin == 0 && count == 1, where, ": a scalar has one row");
    if (e.info.compressed) return inflate_entry(e);
    Tensor t = Tensor::empty(Shape{}, e.info.dtype);
    std::memcpy(t.raw(), base_ + e.data_offset, dtype_size(e.info.dtype));
    return t;
  }
  int64_t rows = e.info.shape[0];
  RAE_CHECK(begin >= 0 && count >= 0 && begin + count <= rows, where, ": rows [", begin, ", ",
            begin + count, ") out of range (", rows, " rows)");
  Shape shape = e.info.shape;
  shape[0] = count;
  if (e.info.compressed) return inflate_entry(e).narrow(0, begin, count);
  uint64_t row_bytes = rows ? e.info.data_bytes / rows : 0;
  const uint8_t* p = base_ + e.data_offset + static_cast<uint64_t>(begin) * row_bytes;
  size_t esize = dtype_size(e.info.dtype);
  if (reinterpret_cast<uintptr_t>(p) % std::max<size_t>(esize, 1) != 0) {
    // Archives written by others need not align array data: copy rather than hand out a
    // misaligned view.
    Tensor t = Tensor::empty(shape, e.info.dtype);
    std::memcpy(t.raw(), p, static_cast<size_t>(count) * row_bytes);
    return t;
  }
  return Tensor::from_blob(const_cast<uint8_t*>(p), shape, e.info.dtype, Device::cpu(), mapping_);
}

// ---------------------------------------------------------------------------------------------
// Writer

Writer::Writer(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) RAE_THROW("npz: cannot create '", tmp_, "': ", errno_text());
}

Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void Writer::write_bytes(const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd_, p, std::min<size_t>(bytes, size_t(1) << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) RAE_THROW("npz: write to '", tmp_, "' failed: ", errno_text());
    p += n, bytes -= static_cast<size_t>(n), offset_ += static_cast<uint64_t>(n);
  }
}

void Writer::begin_array(const std::string& name, DType dtype, const Shape& shape) {
  RAE_CHECK(fd_ >= 0 && !committed_, "npz '", path_, "': writer already committed");
  RAE_CHECK(!open_, "npz '", path_, "': array '", cur_.file_name, "' not ended before '", name,
            "'");
  RAE_CHECK(!name.empty() && name.size() < 1000, "npz '", path_, "': bad array name '", name, "'");
  for (const auto& w : written_)
    RAE_CHECK(w.file_name != name + ".npy", "npz '", path_, "': duplicate array '", name, "'");
  std::string header = npy_header(dtype, shape);
  cur_ = Written{};
  cur_.file_name = name + ".npy";
  cur_.header_offset = offset_;
  // Local header with a ZIP64 extra (sizes patched by end_array) and a padding extra so that the
  // .npy file, whose header is a multiple of 64 bytes, starts 64-byte aligned.
  size_t fixed = 30 + cur_.file_name.size() + 20 + 4;
  size_t pad = (kAlign - (offset_ + fixed) % kAlign) % kAlign;
  std::string h;
  put32(h, kLocalSig);
  put16(h, kZipVersion);
  put16(h, 0);     // flags
  put16(h, 0);     // stored
  put16(h, 0);     // time
  put16(h, 0x21);  // date: 1980-01-01
  put32(h, 0);     // crc (patched)
  put32(h, 0xffffffffu);
  put32(h, 0xffffffffu);
  put16(h, static_cast<uint16_t>(cur_.file_name.size()));
  put16(h, static_cast<uint16_t>(20 + 4 + pad));
  h += cur_.file_name;
  put16(h, kZip64Extra);
  put16(h, 16);
  put64(h, 0);
  put64(h, 0);
  put16(h, kPaddingExtra);
  put16(h, static_cast<uint16_t>(pad));
  h.append(pad, '\0');
  write_bytes(h.data(), h.size());
  open_ = true;
  dtype_ = dtype;
  expected_ = static_cast<uint64_t>(shape.numel()) * dtype_size(dtype);
  received_ = 0;
  cur_.crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(header.data()), static_cast<uInt>(header.size())));
  cur_.size = header.size();
  write_bytes(header.data(), header.size());
}

void Writer::append(const void* data, size_t bytes) {
  RAE_CHECK(open_, "npz '", path_, "': append() outside begin_array()/end_array()");
  RAE_CHECK(received_ + bytes <= expected_, "npz '", path_, "', array '", cur_.file_name,
            "': more bytes than its shape holds (", received_ + bytes, " > ", expected_, ")");
  const Bytef* p = static_cast<const Bytef*>(data);
  for (size_t off = 0; off < bytes; off += size_t(1) << 30)
    cur_.crc = static_cast<uint32_t>(crc32(
        cur_.crc, p + off, static_cast<uInt>(std::min<size_t>(bytes - off, size_t(1) << 30))));
  write_bytes(data, bytes);
  received_ += bytes, cur_.size += bytes;
}

void Writer::append(const Tensor& rows) {
  RAE_CHECK(rows.dtype() == dtype_, "npz '", path_, "', array '", cur_.file_name, "': appending ",
            dtype_name(rows.dtype()), " to a ", dtype_name(dtype_), " array");
  Tensor host = rows.is_contiguous() && !rows.is_cuda() ? rows : rows.to(Device::cpu()).clone();
  append(host.raw(), host.nbytes());
}

void Writer::patch_local_header(const Written& w) {
  std::string crc, sizes;
  put32(crc, w.crc);
  put64(sizes, w.size);
  put64(sizes, w.size);
  uint64_t extra = w.header_offset + 30 + w.file_name.size() + 4;
  if (::pwrite(fd_, crc.data(), 4, static_cast<off_t>(w.header_offset + 14)) != 4 ||
      ::pwrite(fd_, sizes.data(), 16, static_cast<off_t>(extra)) != 16)
    RAE_THROW("npz: write to '", tmp_, "' failed: ", errno_text());
}

void Writer::end_array() {
  RAE_CHECK(open_, "npz '", path_, "': end_array() without begin_array()");
  RAE_CHECK(received_ == expected_, "npz '", path_, "', array '", cur_.file_name, "': got ",
            received_, " bytes, its shape needs ", expected_);
  patch_local_header(cur_);
  written_.push_back(cur_);
  open_ = false;
}

void Writer::add(const std::string& name, const Tensor& t) {
  begin_array(name, t.dtype(), t.shape());
  append(t);
  end_array();
}

void Writer::commit() {
  RAE_CHECK(!open_, "npz '", path_, "': commit() with array '", cur_.file_name, "' not ended");
  RAE_CHECK(!committed_, "npz '", path_, "': committed twice");
  uint64_t cd_offset = offset_;
  std::string cd;
  for (const auto& w : written_) {
    put32(cd, kCentralSig);
    put16(cd, kZipVersion);  // made by
    put16(cd, kZipVersion);  // needed
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0x21);
    put32(cd, w.crc);
    put32(cd, 0xffffffffu);
    put32(cd, 0xffffffffu);
    put16(cd, static_cast<uint16_t>(w.file_name.size()));
    put16(cd, 28);  // ZIP64 extra
    put16(cd, 0);   // comment
    put16(cd, 0);   // disk
    put16(cd, 0);   // internal attributes
    put32(cd, 0);   // external attributes
    put32(cd, 0xffffffffu);
    cd += w.file_name;
    put16(cd, kZip64Extra);
    put16(cd, 24);
    put64(cd, w.size);
    put64(cd, w.size);
    put64(cd, w.header_offset);
  }
  uint64_t n = written_.size();
  uint64_t end64 = cd_offset + cd.size();
  put32(cd, kEnd64Sig);
  put64(cd, 44);
  put16(cd, kZipVersion);
  put16(cd, kZipVersion);
  put32(cd, 0);
  put32(cd, 0);
  put64(cd, n);
  put64(cd, n);
  put64(cd, end64 - cd_offset);
  put64(cd, cd_offset);
  put32(cd, kLocator64Sig);
  put32(cd, 0);
  put64(cd, end64);
  put32(cd, 1);
  put32(cd, kEndSig);
  put16(cd, 0);
  put16(cd, 0);
  put16(cd, static_cast<uint16_t>(std::min<uint64_t>(n, 0xffff)));
  put16(cd, static_cast<uint16_t>(std::min<uint64_t>(n, 0xffff)));
  put32(cd, static_cast<uint32_t>(std::min<uint64_t>(end64 - cd_offset, 0xffffffffu)));
  put32(cd, static_cast<uint32_t>(std::min<uint64_t>(cd_offset, 0xffffffffu)));
  put16(cd, 0);
  write_bytes(cd.data(), cd.size());
  if (::fsync(fd_) != 0) RAE_THROW("npz: fsync of '", tmp_, "' failed: ", errno_text());
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    RAE_THROW("npz: rename of '", tmp_, "' to '", path_, "' failed: ", errno_text());
  committed_ = true;
  std::string dir =
      path_.substr(0, path_.find_last_of('/') == std::string::npos ? 0 : path_.find_last_of('/'));
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& arrays) {
  Writer w(path);
  for (const auto& [name, t] : arrays) w.add(name, t);
  w.commit();
}

}  // namespace rae::npz
