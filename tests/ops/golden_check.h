// Helpers of the op golden tests (test_ops_golden.cpp, test_ops_vision_golden.cpp): a golden
// file's reference tensors and parameters, the tolerance check, and the gradient check that
// starts gradient buffers non-zero so accumulation (+=) is verified. Header-only, test code.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "support/util.h"

namespace rae::test::golden {

namespace st = rae::safetensors;

// One golden file: reference tensors (F64) and scalar parameters (metadata strings).
class Golden {
 public:
  explicit Golden(const std::string& name)
      : file_(st::load(test::golden_path("ops/" + name + ".safetensors"))) {}
  // The stored reference value (F64, or I32 for labels), read-only.
  Tensor ref(const std::string& key) const { return file_.get(key); }
  // A private copy converted to `dt` (inputs are float32-representable, so F32 is exact).
  Tensor in(const std::string& key, DType dt) const { return file_.get(key).cast(dt); }
  double param(const std::string& key) const {
    auto it = file_.metadata.find(key);
    if (it == file_.metadata.end()) ADD_FAILURE() << file_.path << ": no metadata '" << key << "'";
    return it == file_.metadata.end() ? 0.0 : std::stod(it->second);
  }
  bool has(const std::string& key) const { return file_.contains(key); }

 private:
  st::File file_;
};

struct Tol {
  double rtol, atol;  // atol is relative to max |ref|
};
inline constexpr Tol kF64Tol{1e-10, 1e-10};

inline const DType kDtypes[] = {DType::F64, DType::F32};

inline Tol tol_for(DType dt, Tol f32) {
  return dt == DType::F64 ? kF64Tol : f32;
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.item(i)));
  return m;
}

inline void expect_close(const Tensor& got, const Tensor& ref, Tol tol, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  double atol = tol.atol * std::max(max_abs(ref), 1e-30);
  double ratio = test::tolerance_ratio(got, ref, atol, tol.rtol);
  if (std::getenv("RAE_GOLDEN_VERBOSE"))  // prints every comparison's error level
    std::printf("%-44s %-4s max|err| %.3e  max|ref| %.3e  ratio %.3e\n", what.c_str(),
                dtype_name(got.dtype()), test::max_abs_diff(got, ref), max_abs(ref), ratio);
  EXPECT_LE(ratio, 1.0) << what << " (" << dtype_name(got.dtype())
                        << "): max |got - ref| = " << test::max_abs_diff(got, ref)
                        << ", max |ref| = " << max_abs(ref) << ", ratio to tolerance " << ratio
                        << " (rtol " << tol.rtol << ", atol " << tol.atol << " * max|ref|)";
}

// Gradient buffers start non-zero so that accumulation (+=) is checked, not just the value.
inline Tensor grad_init(const Shape& shape, DType dt, uint64_t seed) {
  return test::randn(shape, seed, 0.5, dt);
}

// a + b elementwise in F64 (the expected value of an accumulated gradient).
inline Tensor plus(const Tensor& a, const Tensor& b, double b_scale = 1.0) {
  EXPECT_EQ(a.shape(), b.shape());
  Tensor out = Tensor::empty(a.shape(), DType::F64);
  double* o = out.data<double>();
  for (int64_t i = 0; i < a.numel(); ++i) o[i] = a.item(i) + b_scale * b.item(i);
  return out;
}

// Backward check helper: runs `backward` on grads initialised from grad_init and compares each
// with init + ref("d" + name).
class GradCheck {
 public:
  GradCheck(const Golden& g, DType dt, Tol tol) : g(g), dt(dt), tol(tol) {}
  Tensor make(const std::string& name) {
    Tensor ref = g.ref("d" + name);
    Tensor grad = grad_init(ref.shape(), dt, seed++);
    items.push_back({name, {grad, grad.cast(DType::F64)}});
    return grad;
  }
  void check(const std::string& op) {
    for (auto& [name, gi] : items)
      expect_close(gi.first, plus(gi.second, g.ref("d" + name)), tol, op + " d" + name);
  }

 private:
  const Golden& g;
  DType dt;
  Tol tol;
  uint64_t seed = 100;
  std::vector<std::pair<std::string, std::pair<Tensor, Tensor>>> items;  // name, (grad, init)
};

// prefix + number (also sidesteps a gcc 12 -Wrestrict false positive on "x" + to_string(i)).
inline std::string key(const char* prefix, long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

inline Tensor empty_like(const Tensor& ref, DType dt) {
  return Tensor::empty(ref.shape(), dt);
}

// The dtype of saved statistics (mean, rstd, lse): F32, or F64 for F64 inputs.
inline DType stat_dtype(DType dt) {
  return dt == DType::F64 ? DType::F64 : DType::F32;
}

}  // namespace rae::test::golden
