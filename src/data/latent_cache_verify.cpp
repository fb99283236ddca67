#include "data/latent_cache_verify.h"

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "data/latent_cache_checksum.h"
#include "data/latent_cache_manifest.h"
#include "data/latent_cache_shard.h"
#include "data/latent_cache_stats.h"

namespace rae::cache {

namespace fs = std::filesystem;

std::string VerifyReport::summary() const {
  std::ostringstream os;
  os << (ok() ? "OK" : "FAILED") << ": " << shards_checked << " shards, " << samples_checked
     << " samples, " << bytes_checked << " bytes checked, " << problems.size() << " problem(s)\n";
  for (const auto& p : problems) os << "  problem: " << p << "\n";
  for (const auto& n : notes) os << "  note: " << n << "\n";
  return os.str();
}

std::string shard_file_problem(const std::string& dir, const ShardInfo& s, uint64_t* bytes) {
  const std::string path = (fs::path(dir) / s.file).string();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "shard '" + path + "' is missing";
  if (static_cast<uint64_t>(st.st_size) != s.bytes)
    return "shard '" + path + "' is " + std::to_string(st.st_size) + " bytes, the manifest says " +
           std::to_string(s.bytes) +
           (static_cast<uint64_t>(st.st_size) < s.bytes ? " (truncated)" : "");
  try {
    std::string sum = file_checksum(path, bytes);
    if (sum != s.checksum)
      return "shard '" + path + "' is corrupt: xxh64 " + sum + ", the manifest says " + s.checksum;
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

VerifyReport verify_cache(const std::string& dir, int threads) {
  VerifyReport rep;
  Manifest m;
  try {
    m = Manifest::load(dir);
  } catch (const std::exception& e) {
    rep.problems.push_back(e.what());
    return rep;
  }

  std::mutex mu;
  std::atomic<size_t> next{0};
  auto check_shard = [&](size_t i) {
    const ShardInfo& s = m.shards[i];
    std::vector<std::string> found;
    uint64_t bytes = 0;
    std::string problem = shard_file_problem(dir, s, &bytes);
    if (!problem.empty()) {
      found.push_back(problem);
    } else {
      try {
        ShardFile shard(dir, m, s);  // structure, count, index, labels
      } catch (const std::exception& e) {
        found.push_back(e.what());
      }
    }
    std::lock_guard<std::mutex> lk(mu);
    for (auto& f : found) rep.problems.push_back(f);
    if (found.empty()) {
      ++rep.shards_checked;
      rep.samples_checked += s.samples;
      rep.bytes_checked += bytes;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < m.shards.size();) check_shard(i);
    });
  for (auto& t : pool) t.join();

  if (!m.stats_file.empty()) {
    std::string path = (fs::path(dir) / m.stats_file).string();
    try {
      CacheStats st = load_stats(path);
      if (st.mean.shape() != Shape{m.layout.tokens(), m.layout.channels})
        rep.problems.push_back("stats '" + path + "' has shape " + st.mean.shape().str() +
                               ", expected (" + std::to_string(m.layout.tokens()) + ", " +
                               std::to_string(m.layout.channels) + ")");
      if (st.count != m.total_samples)
        rep.problems.push_back("stats '" + path + "' count is " + std::to_string(st.count) +
                               ", the cache has " + std::to_string(m.total_samples) + " samples");
    } catch (const std::exception& e) {
      rep.problems.push_back(e.what());
    }
  }

  std::set<std::string> listed;
  for (const auto& s : m.shards) listed.insert(s.file);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
      rep.notes.push_back("left-over temporary file '" + entry.path().string() +
                          "' (an interrupted write)");
    else if (entry.path().extension() == ".h5" && !listed.count(name))
      rep.notes.push_back("file '" + entry.path().string() + "' is not listed in the manifest");
  }
  return rep;
}

}  // namespace rae::cache
