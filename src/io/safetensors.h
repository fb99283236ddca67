// safetensors reader and writer (https://huggingface.co/docs/safetensors format):
// 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, and
// optional "__metadata__": {str: str}}, then the raw little-endian tensor bytes.
// Reading memory-maps the file; tensors returned by load() are zero-copy views into the mapping
// (CPU) that keep it alive. Every validation error names the file.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace rae::safetensors {

constexpr size_t kMaxHeaderBytes = 100 * 1024 * 1024;  // as the reference implementation

struct File {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<std::string> names;  // in file order (sorted by offset)
  bool contains(const std::string& name) const;
  // Zero-copy CPU view; throws naming the file and tensor if missing.
  Tensor get(const std::string& name) const;
  // Like get(), but checks dtype and shape, naming file, tensor and both shapes on mismatch.
  Tensor get(const std::string& name, DType dtype, const Shape& shape) const;

  std::shared_ptr<void> mapping;  // keeps the mmap alive
  std::map<std::string, Tensor> tensors;
};

// Opens and validates `path` (header size limit, JSON, dtypes, shapes, offsets in bounds, no
// overlaps or holes, file size matches). Throws rae::Error naming the file on any problem.
File load(const std::string& path);
// Parses from a memory buffer (used by the fuzz target); `name` is used in error messages.
// The bytes are copied, so the buffer need not outlive the result.
File parse(const void* data, size_t size, const std::string& name);

// Writes tensors (any device; copied to CPU as needed) ordered by element size (largest first,
// as the reference implementation, so every tensor is aligned) then name, atomically: to
// path + ".tmp", fsync, rename, fsync of the directory (core/atomic_file.h). Metadata values
// are strings.
void save(const std::string& path, const std::map<std::string, Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

}  // namespace rae::safetensors
