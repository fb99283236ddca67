#include "eval/reference.h"

#include <filesystem>

#include "core/error.h"

namespace rae::eval {

GaussianStats read_gaussian(const npz::Reader& r, const std::string& mu_key,
                            const std::string& sigma_key, const std::string& role) {
  const std::vector<DType> floats = {DType::F64, DType::F32};
  check_npz_array(r, mu_key, floats, {-1}, "float (D,)", role);
  const int64_t d = r.info(mu_key).shape[0];
  RAE_CHECK(d > 0, role, " file '", r.path(), "', key '", mu_key, "' is empty");
  check_npz_array(
      r, sigma_key, floats, {d, d},
      "float (" + std::to_string(d) + ", " + std::to_string(d) + "), matching '" + mu_key + "'",
      role);
  GaussianStats g;
  g.dim = d;
  Tensor mu = r.read(mu_key).cast(DType::F64), sigma = r.read(sigma_key).cast(DType::F64);
  g.mu.assign(mu.data<double>(), mu.data<double>() + d);
  g.sigma.assign(sigma.data<double>(), sigma.data<double>() + d * d);
  return g;
}

Reference open_reference(const std::string& path) {
  RAE_CHECK(std::filesystem::exists(path), "reference file '", path, "' does not exist");
  Reference ref;
  ref.path = path;
  npz::Reader r(path);
  if (r.contains("mu")) {
    ReferenceStats s;
    s.pool = read_gaussian(r, "mu", "sigma", "reference");
    s.spatial = read_gaussian(r, "mu_s", "sigma_s", "reference");
    ref.stats = std::move(s);
    RAE_CHECK(r.contains("arr_0") || r.contains("pool"), "reference file '", path,
              "' has statistics but neither 'arr_0' (uint8 images (N, H, W, 3)) nor 'pool' "
              "(float features (N, ",
              ref.stats->pool.dim, ")) for precision/recall");
    ref.vectors = open_npz_source(path, "reference", FeatureNeeds{false, false});
  } else {
    // No statistics: the file's images or features give both.
    ref.vectors = open_npz_source(path, "reference", FeatureNeeds{true, false});
  }
  return ref;
}

void add_reference_stats(npz::Writer& w, const ReferenceStats& s) {
  auto add = [&](const std::string& key, const std::vector<double>& v, const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F64);
    std::copy(v.begin(), v.end(), t.data<double>());
    w.add(key, t);
  };
  add("mu", s.pool.mu, {s.pool.dim});
  add("sigma", s.pool.sigma, {s.pool.dim, s.pool.dim});
  add("mu_s", s.spatial.mu, {s.spatial.dim});
  add("sigma_s", s.spatial.sigma, {s.spatial.dim, s.spatial.dim});
}

}  // namespace rae::eval
