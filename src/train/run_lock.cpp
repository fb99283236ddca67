#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"

namespace rae::train {

namespace fs = std::filesystem;

namespace {

// What the holder wrote into the lock file, on one line ("" when nothing readable).
std::string holder_of(const std::string& path) {
  std::ifstream in(path);
  std::string line, text;
  while (std::getline(in, line))
    if (!line.empty()) text += (text.empty() ? "" : ", ") + line;
  return text;
}

std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string arg, out;
  while (std::getline(in, arg, '\0')) out += (out.empty() ? "" : " ") + arg;
  return out;
}

std::string describe_self() {
  char host[256] = "?";
  ::gethostname(host, sizeof host - 1);
  char when[64] = "?";
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  if (::localtime_r(&t, &tm)) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
  std::ostringstream os;
  os << "pid " << ::getpid() << "\nhost " << host << "\nstarted " << when << "\ncommand "
     << command_line() << "\n";
  return os.str();
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) RAE_THROW("cannot create run directory '", run_dir, "': ", ec.message());
  const std::string path = (fs::path(run_dir) / kRunLockFile).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) RAE_THROW("cannot open the run lock '", path, "': ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    if (e == EWOULDBLOCK) {
      ::close(fd_);
      fd_ = -1;
      const std::string holder = holder_of(path);
      RAE_THROW("run directory '", run_dir, "' is in use by another trainer (",
                holder.empty() ? "holder not recorded yet" : holder, "; lock file '", path,
                "'). Stop that trainer first, or use another --run-dir.");
    }
    // No flock on this file system: the run goes on, unprotected.
    log::warn("cannot lock the run directory '", run_dir, "' (", std::strerror(e),
              "): another trainer on it would not be detected");
    return;
  }
  // Ours: record who holds it (read by the next one's error message).
  const std::string me = describe_self();
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0)
    log::warn("cannot record the holder in the run lock '", path, "': ", std::strerror(errno));
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

std::unique_ptr<RunLock> lock_run_dir(const std::string& run_dir, int rank) {
  if (rank != 0) return nullptr;
  return std::make_unique<RunLock>(run_dir);
}

}  // namespace rae::train
