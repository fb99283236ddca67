// The project's one way to write files that must never be seen half-written (checkpoints,
// safetensors, cache shards and manifests, run files): write to a temporary name, fsync it,
// rename it into place, fsync the directory. After a crash or kill at any point the final name
// holds either the old complete file or the new complete one; at most a `.tmp` file is left.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rae {

// fsync of a file or a directory by path (errors name the path). Filesystems that refuse fsync
// on directories (EINVAL) are tolerated: the data itself was synced.
void fsync_path(const std::string& path);

// Renames `from` to `to` (replacing it) and fsyncs `to`'s directory, so the rename survives a
// crash. The caller has fsynced `from` (a file, or a directory whose files are synced).
void rename_durable(const std::string& from, const std::string& to);

// Writes `contents` to `path` atomically: path + ".tmp", fsync, rename_durable.
void write_file_atomic(const std::string& path, std::string_view contents);

// A file written through a descriptor and published atomically:
//   AtomicFile f(path); f.write(...); ... f.commit();
// Bytes go to path + ".tmp"; commit() fsyncs, closes and rename_durable()s it. Destroyed without
// commit() (an exception on the way), the temporary file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);  // all of it, retrying short writes and EINTR
  // Overwrites bytes already written at `offset` (headers patched once sizes are known).
  void write_at(uint64_t offset, const void* data, size_t n);
  void commit();
  const std::string& tmp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

}  // namespace rae
