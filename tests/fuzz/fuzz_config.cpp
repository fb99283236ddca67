// libFuzzer target for training config files: check_config_file and parse_train_config on the
// input as a file (through a memfd, so no disk is touched) must accept it or throw rae::Error
// naming the file and key. tests/fuzz/README.md.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("fuzz.cfg", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ftruncate(fd, 0) != 0 ||
      (size > 0 && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)))
    return 0;
  try {
    rae::train::check_config_file(path);
    rae::train::TrainConfig c = rae::train::parse_train_config(path, {});
    (void)c.to_ini();
  } catch (const rae::Error&) {
  }
  return 0;
}
