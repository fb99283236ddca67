#include "data/output_dir.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/log.h"

namespace rae::data {

namespace fs = std::filesystem;

std::vector<std::string> dir_entries(const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) return {};
  RAE_CHECK(fs::is_directory(st), "output '", dir, "' exists and is not a directory");
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  if (ec) RAE_THROW("cannot list output directory '", dir, "': ", ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

bool is_cache_file(const std::string& name) {
  std::string base = name;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".tmp") == 0)
    base.resize(base.size() - 4);
  return base == "manifest.json" || base == "stats.safetensors" || base == "cache_job.json" ||
         (base.size() > 3 && base.compare(base.size() - 3, 3, ".h5") == 0);
}

std::string name_sample(const std::vector<std::string>& names, size_t shown) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < shown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
  return s;
}

void prepare_cache_dir(const std::string& dir, bool overwrite, const std::string& command) {
  const std::vector<std::string> names = dir_entries(dir);
  if (!names.empty()) {
    RAE_CHECK(overwrite, command, ": output directory '", dir, "' is not empty (",
              name_sample(names),
              "); pass --overwrite to replace the cache in it, or choose "
              "another directory");
    std::vector<std::string> removed, kept;
    for (const std::string& n : names) {
      const fs::path p = fs::path(dir) / n;
      if (is_cache_file(n) && fs::is_regular_file(fs::symlink_status(p))) {
        std::error_code ec;
        fs::remove(p, ec);
        if (ec)
          RAE_THROW(command, ": --overwrite: cannot remove '", p.string(), "': ", ec.message());
        removed.push_back(n);
      } else {
        kept.push_back(n);
      }
    }
    log::info(command, ": --overwrite: removed ", removed.size(), " cache file(s) from '", dir, "'",
              kept.empty() ? "" : "; kept " + name_sample(kept) + " (not cache files)");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) RAE_THROW(command, ": cannot create output directory '", dir, "': ", ec.message());
}

}  // namespace rae::data
