#include "diffusion/latent_norm.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace rae::diffusion {

namespace {

void check_args(const Tensor& z, const LatentStats& s, const char* op) {
  RAE_CHECK(s.defined(), op, ": no statistics");
  RAE_CHECK(z.dtype() == DType::F32 && z.is_contiguous(), op, ": z must be contiguous f32, got ",
            z.str());
  const int64_t D = s.mean.numel();
  RAE_CHECK(D > 0 && z.numel() % D == 0 && s.var.numel() == D, op, ": z ", z.str(),
            " does not tile statistics of ", D, " elements");
  RAE_CHECK(s.mean.device() == z.device() && s.var.device() == z.device(), op, ": statistics on ",
            s.mean.device().str(), ", z on ", z.device().str());
}

// The release's float32 arithmetic, element by element: one sqrt and one division (or
// multiplication) per element, both correctly rounded.
template <bool kForward>
void apply_cpu(const Tensor& z, const LatentStats& s) {
  float* p = z.data<float>();
  const float* m = s.mean.data<float>();
  const float* v = s.var.data<float>();
  const float eps = static_cast<float>(s.eps);
  const int64_t D = s.mean.numel(), n = z.numel();
  for (int64_t i = 0; i < n; i += D)
    for (int64_t j = 0; j < D; ++j) {
      const float sd = std::sqrt(v[j] + eps);
      p[i + j] = kForward ? (p[i + j] - m[j]) / sd : p[i + j] * sd + m[j];
    }
}

}  // namespace

LatentStats LatentStats::to(Device device) const {
  if (!defined()) return *this;
  return LatentStats{mean.to(device), var.to(device), eps};
}

void LatentStats::check(int64_t tokens, int64_t channels, const std::string& where) const {
  RAE_CHECK(defined() && var.defined(), where, ": no latent statistics");
  for (const Tensor* t : {&mean, &var})
    RAE_CHECK(t->dtype() == DType::F32 && t->shape() == (Shape{tokens, channels}), where,
              ": latent statistics ", t->str(), ", expected f32 (", tokens, ", ", channels, ")");
  Tensor v = var.to(Device::cpu());
  for (int64_t i = 0; i < v.numel(); ++i)
    RAE_CHECK(std::isfinite(v.data<float>()[i]) && v.data<float>()[i] >= 0, where,
              ": latent variance element ", i, " is ", v.data<float>()[i]);
  RAE_CHECK(eps > 0, where, ": latent normalisation eps ", eps, " must be > 0");
}

void LatentStats::store(std::map<std::string, Tensor>& tensors,
                        std::map<std::string, std::string>& metadata) const {
  if (!defined()) return;
  tensors[kLatentMeanName] = mean;
  tensors[kLatentVarName] = var;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", eps);
  metadata[kLatentEpsKey] = buf;
}

LatentStats LatentStats::load(const std::map<std::string, Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const std::string& where) {
  LatentStats s;
  auto m = tensors.find(kLatentMeanName), v = tensors.find(kLatentVarName);
  if (m == tensors.end() && v == tensors.end()) return s;
  RAE_CHECK(m != tensors.end() && v != tensors.end(), where, ": has only one of ", kLatentMeanName,
            " and ", kLatentVarName);
  s.mean = m->second.cast(DType::F32);
  s.var = v->second.cast(DType::F32);
  auto e = metadata.find(kLatentEpsKey);
  if (e != metadata.end()) {
    try {
      s.eps = std::stod(e->second);
    } catch (const std::exception&) {
      RAE_THROW(where, ": metadata ", kLatentEpsKey, " = '", e->second, "' is not a number");
    }
  }
  return s;
}

void normalize_latents(const Tensor& z, const LatentStats& s) {
  check_args(z, s, "normalize_latents");
  if (z.is_cuda()) return cuda::normalize_latents(z, s);
  apply_cpu<true>(z, s);
}

void denormalize_latents(const Tensor& z, const LatentStats& s) {
  check_args(z, s, "denormalize_latents");
  if (z.is_cuda()) return cuda::denormalize_latents(z, s);
  apply_cpu<false>(z, s);
}

#ifndef RAE_WITH_CUDA
namespace cuda {
void normalize_latents(const Tensor& z, const LatentStats&) {
  RAE_THROW("normalize_latents on ", z.str(), ": a build without CUDA");
}
void denormalize_latents(const Tensor& z, const LatentStats&) {
  RAE_THROW("denormalize_latents on ", z.str(), ": a build without CUDA");
}
}  // namespace cuda
#endif

}  // namespace rae::diffusion
