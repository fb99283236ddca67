#include "data/latent_cache_stats.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "data/latent_cache_manifest.h"
#include "ops/cpu/cpu_util.h"

namespace rae::cache {

RunningStats::RunningStats(int64_t elements) : mean_(elements, 0.0), m2_(elements, 0.0) {}

std::vector<double> RunningStats::variance() const {
  std::vector<double> v(m2_.size(), 0.0);
  if (count_ > 0)
    for (size_t i = 0; i < v.size(); ++i) v[i] = m2_[i] / static_cast<double>(count_);
  return v;
}

void RunningStats::add(const float* rows, int64_t n) {
  if (n <= 0) return;
  StatsAccumulator acc(elements());
  acc.add(rows, n);
  merge(acc.stats());
}

namespace {
// Elements per tile: the tile's sums (2 x 8 KiB) stay in L1 while every row of a batch passes.
constexpr int64_t kStatsTile = 1024;

struct LoadF32 {
  const float* p;
  float operator()(int64_t i) const { return p[i]; }
};
struct LoadBf16 {
  const uint16_t* p;
  float operator()(int64_t i) const { return bf16_bits_to_f32(p[i]); }
};
struct LoadF16 {
  const uint16_t* p;
  float operator()(int64_t i) const { return f16_bits_to_f32(p[i]); }
};

template <typename Load, typename T>
inline __attribute__((always_inline)) void accumulate(const T* rows, int64_t n, int64_t e,
                                                      const float* shift, double* s1, double* s2) {
  for (int64_t i0 = 0; i0 < e; i0 += kStatsTile) {
    const int64_t i1 = std::min(e, i0 + kStatsTile);
    for (int64_t r = 0; r < n; ++r) {
      const Load x{rows + r * e};
      for (int64_t i = i0; i < i1; ++i) {
        const double d = static_cast<double>(x(i)) - static_cast<double>(shift[i]);
        s1[i] += d;
        s2[i] += d * d;
      }
    }
  }
}

// The kernels, in an AVX2 clone and a baseline clone (ops/cpu/cpu_util.h). No FMA contraction:
// every clone rounds d * d and the sum separately, so a shard's statistics have the same bits on
// every CPU (a cache job may be resumed on other nodes).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
RAE_VEC_CLONES_V3 void accumulate_f32(const float* rows, int64_t n, int64_t e, const float* shift,
                                      double* s1, double* s2) {
  accumulate<LoadF32>(rows, n, e, shift, s1, s2);
}
RAE_VEC_CLONES_V3 void accumulate_bf16(const uint16_t* rows, int64_t n, int64_t e,
                                       const float* shift, double* s1, double* s2) {
  accumulate<LoadBf16>(rows, n, e, shift, s1, s2);
}
void accumulate_f16(const uint16_t* rows, int64_t n, int64_t e, const float* shift, double* s1,
                    double* s2) {
  accumulate<LoadF16>(rows, n, e, shift, s1, s2);  // f16 -> f32 is a call: nothing to vectorise
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
}  // namespace

StatsAccumulator::StatsAccumulator(int64_t elements)
    : shift_(elements, 0.0f), s1_(elements, 0.0), s2_(elements, 0.0) {}

void StatsAccumulator::add(const void* rows, StorageDType dtype, int64_t n) {
  if (n <= 0) return;
  const int64_t e = static_cast<int64_t>(shift_.size());
  if (count_ == 0) {  // the shift: the first row's values (it contributes 0 to both sums)
    for (int64_t i = 0; i < e; ++i) {
      switch (dtype) {
        case StorageDType::F32:
          shift_[i] = static_cast<const float*>(rows)[i];
          break;
        case StorageDType::BF16:
          shift_[i] = bf16_bits_to_f32(static_cast<const uint16_t*>(rows)[i]);
          break;
        case StorageDType::F16:
          shift_[i] = f16_bits_to_f32(static_cast<const uint16_t*>(rows)[i]);
          break;
      }
    }
  }
  switch (dtype) {
    case StorageDType::F32:
      accumulate_f32(static_cast<const float*>(rows), n, e, shift_.data(), s1_.data(), s2_.data());
      break;
    case StorageDType::BF16:
      accumulate_bf16(static_cast<const uint16_t*>(rows), n, e, shift_.data(), s1_.data(),
                      s2_.data());
      break;
    case StorageDType::F16:
      accumulate_f16(static_cast<const uint16_t*>(rows), n, e, shift_.data(), s1_.data(),
                     s2_.data());
      break;
  }
  count_ += n;
}

RunningStats StatsAccumulator::stats() const {
  const size_t e = shift_.size();
  std::vector<double> mean(e, 0.0), m2(e, 0.0);
  if (count_ > 0) {
    const double n = static_cast<double>(count_);
    for (size_t i = 0; i < e; ++i) {
      mean[i] = static_cast<double>(shift_[i]) + s1_[i] / n;
      m2[i] = std::max(0.0, s2_[i] - s1_[i] * s1_[i] / n);  // rounding may dip below 0
    }
  }
  return RunningStats::from_moments(count_, std::move(mean), std::move(m2));
}

void RunningStats::merge(const RunningStats& o) {
  if (o.count_ == 0) return;
  if (count_ == 0) {
    *this = o;
    return;
  }
  RAE_CHECK(o.elements() == elements(), "RunningStats::merge: ", elements(), " vs ", o.elements(),
            " elements per sample");
  const double na = static_cast<double>(count_), nb = static_cast<double>(o.count_);
  const double n = na + nb;
  for (size_t i = 0; i < mean_.size(); ++i) {
    double delta = o.mean_[i] - mean_[i];
    mean_[i] += delta * (nb / n);
    m2_[i] += o.m2_[i] + delta * delta * (na * nb / n);
  }
  count_ += o.count_;
}

std::vector<double> RunningStats::pack() const {
  std::vector<double> out;
  out.reserve(1 + 2 * mean_.size());
  out.push_back(static_cast<double>(count_));
  out.insert(out.end(), mean_.begin(), mean_.end());
  out.insert(out.end(), m2_.begin(), m2_.end());
  return out;
}

RunningStats RunningStats::unpack(const std::vector<double>& p) {
  RAE_CHECK(!p.empty() && (p.size() - 1) % 2 == 0, "RunningStats::unpack: bad length ", p.size());
  size_t e = (p.size() - 1) / 2;
  return from_moments(static_cast<int64_t>(p[0]),
                      std::vector<double>(p.begin() + 1, p.begin() + 1 + e),
                      std::vector<double>(p.begin() + 1 + e, p.end()));
}

RunningStats RunningStats::from_moments(int64_t count, std::vector<double> mean,
                                        std::vector<double> m2) {
  RAE_CHECK(mean.size() == m2.size(), "RunningStats: mean and M2 sizes differ");
  RAE_CHECK(count >= 0, "RunningStats: negative count");
  RunningStats s;
  s.count_ = count;
  s.mean_ = std::move(mean);
  s.m2_ = std::move(m2);
  return s;
}

// A minimal safetensors writer/reader for the three stats tensors, kept local so this layer does
// not depend on the io library's implementation; the files are standard safetensors.
void save_stats(const std::string& path, const RunningStats& stats, int64_t tokens,
                int64_t channels) {
  RAE_CHECK(tokens * channels == stats.elements(), "save_stats: ", tokens, "x", channels,
            " does not match ", stats.elements(), " elements");
  const int64_t e = stats.elements();
  std::vector<float> mean(e), var(e);
  std::vector<double> v = stats.variance();
  for (int64_t i = 0; i < e; ++i) {
    mean[i] = static_cast<float>(stats.mean()[i]);
    var[i] = static_cast<float>(v[i]);
  }
  const uint64_t fbytes = static_cast<uint64_t>(e) * 4;
  nlohmann::json h;
  h["count"] = {{"dtype", "I64"}, {"shape", {1}}, {"data_offsets", {0, 8}}};
  h["mean"] = {{"dtype", "F32"}, {"shape", {tokens, channels}}, {"data_offsets", {8, 8 + fbytes}}};
  h["var"] = {{"dtype", "F32"},
              {"shape", {tokens, channels}},
              {"data_offsets", {8 + fbytes, 8 + 2 * fbytes}}};
  h["__metadata__"] = {{"count", std::to_string(stats.count())}, {"variance", "population"}};
  std::string header = h.dump();
  while (header.size() % 8) header.push_back(' ');  // data starts 8-byte aligned
  std::string out;
  uint64_t hlen = header.size();
  out.append(reinterpret_cast<const char*>(&hlen), 8);
  out += header;
  int64_t count = stats.count();
  out.append(reinterpret_cast<const char*>(&count), 8);
  out.append(reinterpret_cast<const char*>(mean.data()), fbytes);
  out.append(reinterpret_cast<const char*>(var.data()), fbytes);
  write_file_atomic(path, out);
}

CacheStats load_stats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) RAE_THROW("cannot open stats file '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  RAE_CHECK(bytes.size() >= 8, "stats file '", path, "' is truncated (", bytes.size(), " bytes)");
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  RAE_CHECK(hlen <= bytes.size() - 8, "stats file '", path, "': header length ", hlen,
            " exceeds the file size");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes.substr(8, hlen));
  } catch (const nlohmann::json::exception& e) {
    RAE_THROW("stats file '", path, "': bad safetensors header: ", e.what());
  }
  const size_t base = 8 + hlen;
  auto tensor_bytes = [&](const char* name, const char* dtype, std::vector<int64_t>* shape) {
    RAE_CHECK(h.contains(name), "stats file '", path, "' has no tensor '", name, "'");
    const auto& t = h[name];
    RAE_CHECK(t.value("dtype", "") == dtype, "stats file '", path, "': tensor '", name,
              "' must be ", dtype);
    *shape = t.at("shape").get<std::vector<int64_t>>();
    auto off = t.at("data_offsets").get<std::vector<uint64_t>>();
    RAE_CHECK(off.size() == 2 && off[0] <= off[1] && base + off[1] <= bytes.size(), "stats file '",
              path, "': tensor '", name, "' has offsets out of bounds");
    return std::string_view(bytes).substr(base + off[0], off[1] - off[0]);
  };
  CacheStats s;
  std::vector<int64_t> cshape, mshape, vshape;
  auto cb = tensor_bytes("count", "I64", &cshape);
  RAE_CHECK(cb.size() == 8, "stats file '", path, "': tensor 'count' must hold one i64");
  std::memcpy(&s.count, cb.data(), 8);
  auto mb = tensor_bytes("mean", "F32", &mshape);
  auto vb = tensor_bytes("var", "F32", &vshape);
  RAE_CHECK(mshape.size() == 2 && mshape == vshape, "stats file '", path,
            "': 'mean' and 'var' must both be (tokens, channels)");
  RAE_CHECK(mb.size() == static_cast<size_t>(mshape[0] * mshape[1] * 4) && vb.size() == mb.size(),
            "stats file '", path, "': tensor sizes do not match their shapes");
  s.mean = Tensor::empty({mshape[0], mshape[1]}, DType::F32);
  s.var = Tensor::empty({mshape[0], mshape[1]}, DType::F32);
  std::memcpy(s.mean.raw(), mb.data(), mb.size());
  std::memcpy(s.var.raw(), vb.data(), vb.size());
  return s;
}

}  // namespace rae::cache
