#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace rae {

namespace {
std::string errno_text() {
  return std::strerror(errno);
}
}  // namespace

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) RAE_THROW("cannot open '", path, "' for fsync: ", errno_text());
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0 && e != EINVAL) RAE_THROW("fsync of '", path, "' failed: ", std::strerror(e));
}

void rename_durable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    RAE_THROW("cannot rename '", from, "' to '", to, "': ", errno_text());
  const std::string dir = std::filesystem::path(to).parent_path().string();
  fsync_path(dir.empty() ? "." : dir);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) RAE_THROW("cannot create '", tmp_, "': ", errno_text());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  RAE_CHECK(fd_ >= 0, "write to '", tmp_, "' after commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      RAE_THROW("writing '", tmp_, "' failed: ", errno_text(), " (disk full?)");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t n) {
  RAE_CHECK(fd_ >= 0, "write to '", tmp_, "' after commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      RAE_THROW("writing '", tmp_, "' failed: ", errno_text(), " (disk full?)");
    }
    p += w, offset += static_cast<uint64_t>(w), n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  RAE_CHECK(fd_ >= 0, "'", tmp_, "' committed twice");
  if (::fsync(fd_) != 0) RAE_THROW("fsync of '", tmp_, "' failed: ", errno_text());
  const int fd = fd_;
  fd_ = -1;  // from here on the destructor leaves the file alone; failures remove it below
  if (::close(fd) != 0) {
    std::string err = errno_text();
    ::unlink(tmp_.c_str());
    RAE_THROW("closing '", tmp_, "' failed: ", err);
  }
  try {
    rename_durable(tmp_, path_);
  } catch (...) {
    ::unlink(tmp_.c_str());
    throw;
  }
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents.data(), contents.size());
  f.commit();
}

}  // namespace rae
