// safetensors reader (mmap, strict validation) and atomic writer. See safetensors.h.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace rae::safetensors {
namespace {

using json = nlohmann::json;

// The format's dtype spellings for the dtypes we support.
const char* format_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::BF16:
      return "BF16";
    case DType::F16:
      return "F16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U8:
      return "U8";
  }
  return "?";
}

bool parse_format_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F64", DType::F64}, {"BF16", DType::BF16}, {"F16", DType::F16},
      {"I32", DType::I32}, {"I64", DType::I64}, {"U8", DType::U8}};
  for (const auto& [name, t] : table) {
    if (s == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Dtypes the format defines but this project does not load (named in the error message).
bool is_known_unsupported_dtype(const std::string& s) {
  static const char* names[] = {"BOOL",    "I8",      "I16", "U16",     "U32",     "U64", "F8_E4M3",
                                "F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// Reads a non-negative integer that fits in uint64 from a JSON value, or throws.
uint64_t json_uint(const json& v, const std::string& file, const std::string& tensor,
                   const char* what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  RAE_THROW("safetensors file '", file, "': tensor '", tensor, "': ", what,
            " must hold non-negative integers, got ", v.dump());
}

Entry parse_entry(const std::string& file, const std::string& name, const json& info) {
  auto fail = [&](const std::string& msg) -> Error {
    return Error("safetensors file '" + file + "': tensor '" + name + "': " + msg);
  };
  if (name.empty()) throw fail("empty tensor name");
  if (!info.is_object()) throw fail("entry must be a JSON object, got " + info.dump());
  for (const auto& [key, value] : info.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw fail("unexpected key '" + key + "'");
  }
  auto dt = info.find("dtype");
  auto sh = info.find("shape");
  auto off = info.find("data_offsets");
  if (dt == info.end() || sh == info.end() || off == info.end())
    throw fail("entry needs dtype, shape and data_offsets");

  Entry e;
  e.name = name;
  if (!dt->is_string()) throw fail("dtype must be a string, got " + dt->dump());
  const std::string dname = dt->get<std::string>();
  if (!parse_format_dtype(dname, &e.dtype)) {
    if (is_known_unsupported_dtype(dname))
      throw fail("dtype " + dname + " is not supported (F32, F64, BF16, F16, I32, I64, U8)");
    throw fail("unknown dtype '" + dname + "'");
  }

  if (!sh->is_array()) throw fail("shape must be an array, got " + sh->dump());
  if (sh->size() > static_cast<size_t>(kMaxDims))
    throw fail("shape has " + std::to_string(sh->size()) + " dims, at most " +
               std::to_string(kMaxDims) + " are supported");
  // The product of the non-zero dims (and its byte size) must fit in int64, even when another
  // dim is 0: Shape::numel() multiplies in order, so (2^40, 2^40, 0) would overflow before
  // reaching the 0.
  constexpr uint64_t kMaxElems = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t nonzero_product = 1;
  bool has_zero = false;
  for (const json& d : *sh) {
    uint64_t v = json_uint(d, file, name, "shape");
    if (v == 0) {
      has_zero = true;
    } else if (v > kMaxElems / nonzero_product) {
      throw fail("shape " + sh->dump() + " is too large");
    } else {
      nonzero_product *= v;
    }
    e.shape.push_back(static_cast<int64_t>(v));
  }
  const uint64_t esize = dtype_size(e.dtype);
  if (nonzero_product > kMaxElems / esize) throw fail("shape " + sh->dump() + " is too large");
  const uint64_t bytes = has_zero ? 0 : nonzero_product * esize;

  if (!off->is_array() || off->size() != 2)
    throw fail("data_offsets must be [begin, end], got " + off->dump());
  e.begin = json_uint((*off)[0], file, name, "data_offsets");
  e.end = json_uint((*off)[1], file, name, "data_offsets");
  if (e.end < e.begin) throw fail("data_offsets " + off->dump() + " end before begin");
  if (e.end - e.begin != bytes)
    throw fail("data_offsets " + off->dump() + " span " + std::to_string(e.end - e.begin) +
               " bytes but dtype " + dname + " shape " + e.shape.str() + " needs " +
               std::to_string(bytes));
  return e;
}

// Parses the JSON header with a depth limit (valid headers nest 3 deep) and duplicate-key check,
// so hostile input can neither exhaust memory with nesting nor silently shadow a tensor.
json parse_header_json(const char* begin, size_t len, const std::string& file) {
  std::set<std::string> top_keys;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (depth > 4) RAE_THROW("safetensors file '", file, "': header JSON nests too deep");
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!top_keys.insert(k).second)
        RAE_THROW("safetensors file '", file, "': duplicate key '", k, "' in header");
    }
    return true;
  };
  try {
    return json::parse(begin, begin + len, cb);
  } catch (const json::exception& e) {
    RAE_THROW("safetensors file '", file, "': header is not valid JSON: ", e.what());
  }
}

// The validated layout of a buffer: entries sorted by offset, metadata, data start.
struct Layout {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
  size_t data_start = 0;
};

Layout parse_layout(const char* data, size_t size, const std::string& file) {
  if (size < 8)
    RAE_THROW("safetensors file '", file, "': truncated: ", size,
              " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(data[i]);
  if (n > kMaxHeaderBytes)
    RAE_THROW("safetensors file '", file, "': header length ", n, " exceeds the limit of ",
              kMaxHeaderBytes, " bytes (corrupt file?)");
  if (n > size - 8)
    RAE_THROW("safetensors file '", file, "': truncated: header length ", n, " but only ", size - 8,
              " bytes follow");
  if (n < 2 || data[8] != '{')
    RAE_THROW("safetensors file '", file, "': header does not start with '{'");

  json header = parse_header_json(data + 8, n, file);
  if (!header.is_object()) RAE_THROW("safetensors file '", file, "': header is not a JSON object");

  Layout layout;
  layout.data_start = 8 + n;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        RAE_THROW("safetensors file '", file, "': __metadata__ must be an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          RAE_THROW("safetensors file '", file, "': __metadata__ value for '", mk,
                    "' is not a string: ", mv.dump());
        layout.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    layout.entries.push_back(parse_entry(file, key, value));
  }

  // Sorted by offsets, the tensors must tile the data area exactly: no holes, no overlaps.
  std::sort(layout.entries.begin(), layout.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t data_bytes = size - layout.data_start;
  uint64_t expect = 0;
  for (const Entry& e : layout.entries) {
    if (e.begin != expect)
      RAE_THROW("safetensors file '", file, "': tensor '", e.name, "' data_offsets [", e.begin,
                ", ", e.end, "] ",
                (e.begin < expect ? "overlap the previous tensor" : "leave a hole"),
                " (expected begin ", expect, ")");
    expect = e.end;
  }
  if (expect != data_bytes)
    RAE_THROW("safetensors file '", file,
              "': ", (expect < data_bytes ? "size mismatch: " : "truncated: "), "tensors cover ",
              expect, " data bytes but the file has ", data_bytes, " after the header");
  return layout;
}

File build_file(const char* data, size_t size, const std::string& file,
                std::shared_ptr<void> keep_alive) {
  Layout layout = parse_layout(data, size, file);
  File f;
  f.path = file;
  f.metadata = std::move(layout.metadata);
  f.mapping = keep_alive;
  for (const Entry& e : layout.entries) {
    char* p = const_cast<char*>(data) + layout.data_start + e.begin;
    Tensor t;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      t = Tensor::from_blob(p, e.shape, e.dtype, Device::cpu(), keep_alive);
    } else {
      // A writer that does not order tensors by alignment leaves this one misaligned: copy it.
      t = Tensor::empty(e.shape, e.dtype);
      if (e.end > e.begin) std::memcpy(t.raw(), p, e.end - e.begin);
    }
    f.names.push_back(e.name);
    f.tensors.emplace(e.name, std::move(t));
  }
  return f;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

bool File::contains(const std::string& name) const {
  return tensors.count(name) != 0;
}

Tensor File::get(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    std::string have;
    for (size_t i = 0; i < names.size() && i < 8; ++i) have += (i ? ", " : "") + names[i];
    if (names.size() > 8) have += ", ...";
    RAE_THROW("safetensors file '", path, "': no tensor named '", name, "' (", names.size(),
              " tensors: ", have, ")");
  }
  return it->second;
}

Tensor File::get(const std::string& name, DType dtype, const Shape& shape) const {
  Tensor t = get(name);
  if (t.dtype() != dtype || t.shape() != shape)
    RAE_THROW("safetensors file '", path, "': tensor '", name, "' is ", dtype_name(t.dtype()),
              t.shape().str(), ", expected ", dtype_name(dtype), shape.str());
  return t;
}

File load(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) RAE_THROW("safetensors file '", path, "': cannot open: ", errno_text());
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string err = errno_text();
    ::close(fd);
    RAE_THROW("safetensors file '", path, "': cannot stat: ", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    RAE_THROW("safetensors file '", path, "': not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    RAE_THROW("safetensors file '", path, "': truncated: ", size,
              " bytes, shorter than the 8-byte header length");
  }
  // Private writable mapping: tensors may be modified in memory (copy-on-write), never the file.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  std::string err = errno_text();
  ::close(fd);  // the mapping stays valid after close
  if (addr == MAP_FAILED) RAE_THROW("safetensors file '", path, "': mmap failed: ", err);
  std::shared_ptr<void> mapping(addr, [size](void* a) { ::munmap(a, size); });
  return build_file(static_cast<const char*>(addr), size, path, mapping);
}

File parse(const void* data, size_t size, const std::string& name) {
  // Copy into owned, aligned storage so the returned tensors never dangle.
  std::shared_ptr<Storage> owned = allocate_storage(std::max<size_t>(size, 1), Device::cpu());
  if (size) std::memcpy(owned->data, data, size);
  return build_file(static_cast<const char*>(owned->data), size, name, owned);
}

void save(const std::string& path, const std::map<std::string, Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  // Largest elements first, then by name: every tensor starts aligned to its element size
  // (the data area starts 8-aligned), so load() can return zero-copy views.
  std::vector<std::pair<std::string, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__")
      RAE_THROW("safetensors: writing '", path, "': invalid tensor name '", name, "'");
    if (!t.defined())
      RAE_THROW("safetensors: writing '", path, "': tensor '", name, "' is undefined");
    Tensor c = t.to(Device::cpu());
    if (!c.is_contiguous()) c = c.clone();
    order.emplace_back(name, c);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });

  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    json shape = json::array();
    for (int64_t d : t.shape()) shape.push_back(d);
    uint64_t end = offset + t.nbytes();
    header[name] = {
        {"dtype", format_dtype_name(t.dtype())}, {"shape", shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    RAE_THROW("safetensors: writing '", path,
              "': cannot encode header (names and metadata must be "
              "UTF-8): ",
              e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data area starts 8-aligned
  if (text.size() > kMaxHeaderBytes)
    RAE_THROW("safetensors: writing '", path, "': header of ", text.size(), " bytes is too large");
  unsigned char len_bytes[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(n >> (8 * i));

  rae::AtomicFile f(path);
  f.write(len_bytes, 8);
  f.write(text.data(), text.size());
  for (const auto& [name, t] : order) f.write(t.raw(), t.nbytes());
  f.commit();
}

}  // namespace rae::safetensors
