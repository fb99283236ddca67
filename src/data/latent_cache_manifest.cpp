#include "data/latent_cache_manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/latent_cache_checksum.h"

namespace rae::cache {

using nlohmann::json;
namespace fs = std::filesystem;

const char* storage_dtype_name(StorageDType t) {
  switch (t) {
    case StorageDType::BF16:
      return "bf16";
    case StorageDType::F16:
      return "f16";
    case StorageDType::F32:
      return "f32";
  }
  return "?";
}

StorageDType storage_dtype_from_name(const std::string& n) {
  if (n == "bf16") return StorageDType::BF16;
  if (n == "f16") return StorageDType::F16;
  if (n == "f32") return StorageDType::F32;
  RAE_THROW("unknown cache dtype '", n, "' (expected bf16, f16 or f32)");
}

size_t storage_dtype_size(StorageDType t) {
  return t == StorageDType::F32 ? 4 : 2;
}

namespace {

// Typed field access with errors naming the file and the key path.
struct Reader {
  const std::string& where;

  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    RAE_THROW("manifest '", where, "': key '", key, "' ", why);
  }
  const json& need(const json& obj, const std::string& name, const std::string& path) const {
    auto it = obj.find(name);
    if (it == obj.end()) bad(path, "is missing");
    return *it;
  }
  int64_t integer(const json& obj, const std::string& name, const std::string& path) const {
    const json& v = need(obj, name, path);
    if (!v.is_number_integer()) bad(path, "must be an integer, got " + v.dump());
    return v.get<int64_t>();
  }
  std::string string(const json& obj, const std::string& name, const std::string& path) const {
    const json& v = need(obj, name, path);
    if (!v.is_string()) bad(path, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }
  bool boolean(const json& obj, const std::string& name, const std::string& path) const {
    const json& v = need(obj, name, path);
    if (!v.is_boolean()) bad(path, "must be true or false, got " + v.dump());
    return v.get<bool>();
  }
  // Unknown keys are errors (a typo must not silently fall back to a default).
  void only(const json& obj, std::initializer_list<const char*> keys,
            const std::string& path) const {
    std::set<std::string> allowed(keys.begin(), keys.end());
    for (auto it = obj.begin(); it != obj.end(); ++it)
      if (!allowed.count(it.key()))
        bad(path.empty() ? it.key() : path + "." + it.key(), "is not a known key");
  }
};

}  // namespace

std::string Manifest::to_json_string() const {
  json j;
  j["format"] = kFormatName;
  j["format_version"] = format_version;
  j["encoder"] = {{"id", encoder_id}, {"weights_hash", encoder_weights_hash}};
  j["image_size"] = image_size;
  j["split"] = split;
  j["grid"] = {{"h", layout.grid_h}, {"w", layout.grid_w}};
  j["channels"] = layout.channels;
  j["dtype"] = storage_dtype_name(layout.dtype);
  j["has_flip"] = layout.has_flip;
  j["num_classes"] = num_classes;
  j["class_names"] = class_names;
  j["total_samples"] = total_samples;
  j["checksum_algorithm"] = checksum_algorithm;
  j["stats_file"] = stats_file;
  json shard_list = json::array();
  for (const auto& s : shards)
    shard_list.push_back({{"file", s.file},
                          {"samples", s.samples},
                          {"first_index", s.first_index},
                          {"bytes", s.bytes},
                          {"checksum", s.checksum}});
  j["shards"] = shard_list;
  return j.dump(2) + "\n";
}

Manifest Manifest::from_json_string(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    RAE_THROW("manifest '", where, "' is not valid JSON: ", e.what());
  }
  Reader r{where};
  if (!j.is_object()) RAE_THROW("manifest '", where, "': top level must be a JSON object");
  r.only(j,
         {"format", "format_version", "encoder", "image_size", "split", "grid", "channels", "dtype",
          "has_flip", "num_classes", "class_names", "total_samples", "checksum_algorithm",
          "stats_file", "shards"},
         "");
  Manifest m;
  if (r.string(j, "format", "format") != kFormatName)
    r.bad("format", std::string("must be \"") + kFormatName + "\"");
  m.format_version = static_cast<int>(r.integer(j, "format_version", "format_version"));
  if (m.format_version != kFormatVersion)
    r.bad("format_version", "is " + std::to_string(m.format_version) +
                                ", this build reads version " + std::to_string(kFormatVersion));
  const json& enc = r.need(j, "encoder", "encoder");
  if (!enc.is_object()) r.bad("encoder", "must be an object");
  r.only(enc, {"id", "weights_hash"}, "encoder");
  m.encoder_id = r.string(enc, "id", "encoder.id");
  m.encoder_weights_hash = r.string(enc, "weights_hash", "encoder.weights_hash");
  m.image_size = r.integer(j, "image_size", "image_size");
  m.split = r.string(j, "split", "split");
  const json& grid = r.need(j, "grid", "grid");
  if (!grid.is_object()) r.bad("grid", "must be an object {h, w}");
  r.only(grid, {"h", "w"}, "grid");
  m.layout.grid_h = r.integer(grid, "h", "grid.h");
  m.layout.grid_w = r.integer(grid, "w", "grid.w");
  m.layout.channels = r.integer(j, "channels", "channels");
  std::string dt = r.string(j, "dtype", "dtype");
  try {
    m.layout.dtype = storage_dtype_from_name(dt);
  } catch (const Error& e) {
    r.bad("dtype", e.what());
  }
  m.layout.has_flip = r.boolean(j, "has_flip", "has_flip");
  m.num_classes = r.integer(j, "num_classes", "num_classes");
  const json& names = r.need(j, "class_names", "class_names");
  if (!names.is_array()) r.bad("class_names", "must be an array of strings");
  for (size_t i = 0; i < names.size(); ++i) {
    if (!names[i].is_string()) r.bad("class_names[" + std::to_string(i) + "]", "must be a string");
    m.class_names.push_back(names[i].get<std::string>());
  }
  m.total_samples = r.integer(j, "total_samples", "total_samples");
  m.checksum_algorithm = r.string(j, "checksum_algorithm", "checksum_algorithm");
  m.stats_file = r.string(j, "stats_file", "stats_file");
  const json& list = r.need(j, "shards", "shards");
  if (!list.is_array()) r.bad("shards", "must be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string p = "shards[" + std::to_string(i) + "]";
    const json& s = list[i];
    if (!s.is_object()) r.bad(p, "must be an object");
    r.only(s, {"file", "samples", "first_index", "bytes", "checksum"}, p);
    ShardInfo info;
    info.file = r.string(s, "file", p + ".file");
    info.samples = r.integer(s, "samples", p + ".samples");
    info.first_index = r.integer(s, "first_index", p + ".first_index");
    int64_t bytes = r.integer(s, "bytes", p + ".bytes");
    if (bytes < 0) r.bad(p + ".bytes", "must be >= 0");
    info.bytes = static_cast<uint64_t>(bytes);
    info.checksum = r.string(s, "checksum", p + ".checksum");
    m.shards.push_back(info);
  }
  m.validate(where);
  return m;
}

bool LatentLayout::in_bounds() const {
  const int64_t k = kMaxSampleElements;
  if (grid_h <= 0 || grid_w <= 0 || channels <= 0 || grid_h > k || grid_w > k || channels > k)
    return false;
  return grid_h * grid_w <= k && grid_h * grid_w * channels <= k;  // each factor <= 2^28
}

void Manifest::validate(const std::string& where) const {
  auto bad = [&](const std::string& key, const std::string& why) {
    RAE_THROW("manifest '", where, "': key '", key, "' ", why);
  };
  if (layout.grid_h <= 0 || layout.grid_w <= 0) bad("grid", "must have h, w > 0");
  if (layout.channels <= 0) bad("channels", "must be > 0");
  if (!layout.in_bounds())
    bad("channels", "gives samples of " + std::to_string(layout.grid_h) + "x" +
                        std::to_string(layout.grid_w) + "x" + std::to_string(layout.channels) +
                        " elements, more than the limit of " + std::to_string(kMaxSampleElements));
  if (num_classes < 0) bad("num_classes", "must be >= 0");
  if (!class_names.empty() && static_cast<int64_t>(class_names.size()) != num_classes)
    bad("class_names", "has " + std::to_string(class_names.size()) + " names but num_classes is " +
                           std::to_string(num_classes));
  if (checksum_algorithm != std::string(kChecksumAlgorithm))
    bad("checksum_algorithm", "is '" + checksum_algorithm + "', expected 'xxh64'");
  if (total_samples < 0) bad("total_samples", "must be >= 0");
  int64_t next = 0;
  std::set<std::string> files;
  for (size_t i = 0; i < shards.size(); ++i) {
    const ShardInfo& s = shards[i];
    std::string p = "shards[" + std::to_string(i) + "]";
    if (s.file.empty() || s.file.find('/') != std::string::npos || s.file == "." || s.file == "..")
      bad(p + ".file",
          "must be a plain file name inside the cache directory, got '" + s.file + "'");
    if (!files.insert(s.file).second) bad(p + ".file", "'" + s.file + "' is listed twice");
    if (s.samples <= 0) bad(p + ".samples", "must be > 0");
    if (s.samples > std::numeric_limits<int64_t>::max() - next)
      bad(p + ".samples", "overflows the sample count");
    if (s.first_index != next)
      bad(p + ".first_index", "is " + std::to_string(s.first_index) + ", expected " +
                                  std::to_string(next) +
                                  " (shards must tile the sample ids in order)");
    if (s.checksum.size() != 16 ||
        s.checksum.find_first_not_of("0123456789abcdef") != std::string::npos)
      bad(p + ".checksum", "must be 16 lower-case hex digits (xxh64), got '" + s.checksum + "'");
    next += s.samples;
  }
  if (next != total_samples)
    bad("total_samples",
        "is " + std::to_string(total_samples) + " but the shards hold " + std::to_string(next));
}

void Manifest::finalize_shards() {
  std::sort(shards.begin(), shards.end(),
            [](const ShardInfo& a, const ShardInfo& b) { return a.first_index < b.first_index; });
  total_samples = 0;
  for (const auto& s : shards) total_samples += s.samples;
}

Manifest Manifest::load(const std::string& dir_or_file) {
  fs::path p(dir_or_file);
  if (p.extension() != ".json") p /= kManifestFile;
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    if (!fs::exists(p))
      RAE_THROW("manifest '", p.string(), "' does not exist (is this a latent cache directory?)");
    RAE_THROW("cannot read manifest '", p.string(), "': ", std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_string(ss.str(), p.string());
}

void Manifest::save(const std::string& dir) const {
  fs::path p = fs::path(dir) / kManifestFile;
  validate(p.string());
  write_file_atomic(p.string(), to_json_string());
}

size_t Manifest::shard_of(int64_t index) const {
  RAE_CHECK(index >= 0 && index < total_samples, "sample index ", index, " is outside the cache (",
            total_samples, " samples)");
  auto it = std::upper_bound(shards.begin(), shards.end(), index,
                             [](int64_t v, const ShardInfo& s) { return v < s.first_index; });
  return static_cast<size_t>(it - shards.begin()) - 1;
}

}  // namespace rae::cache
