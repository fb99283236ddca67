#include "sampling/noise.h"

#include <tbb/parallel_for.h>

#include "core/error.h"
#include "core/rng.h"

namespace rae::sampling {

void fill_keyed_noise(const Tensor& out, uint64_t seed, uint64_t step,
                      const std::vector<int64_t>& ids) {
  const int64_t B = out.dim(0), D = out.numel() / std::max<int64_t>(B, 1);
  RAE_CHECK(static_cast<int64_t>(ids.size()) == B, "noise: ", ids.size(), " ids for a batch of ",
            B);
  Tensor host = out.device().is_cpu() && out.is_contiguous() ? out : Tensor::empty(out.shape());
  float* p = host.data<float>();
  tbb::parallel_for(int64_t(0), B, [&](int64_t b) {
    rng::Key k{seed, rng::Purpose::Sample, step, static_cast<uint64_t>(ids[b])};
    for (int64_t i = 0; i < D; ++i) p[b * D + i] = rng::normal_at(k, static_cast<uint64_t>(i));
  });
  if (host.raw() != out.raw()) Tensor(out).copy_from(host);
}

NoiseFile::NoiseFile(const std::string& path, int64_t T, int64_t C)
    : path_(path), file_(safetensors::load(path)), tokens_(T), channels_(C) {
  auto as_f32 = [](const Tensor& t) { return t.dtype() == DType::F32 ? t : t.cast(DType::F32); };
  RAE_CHECK(file_.contains("noise"), path,
            ": no tensor 'noise' (the initial noise, (N, C, H, W) "
            "or (N, T, C))");
  noise_ = as_f32(file_.get("noise"));
  const Shape& s = noise_.shape();
  nchw_ = s.size() == 4;
  RAE_CHECK((nchw_ && s[1] == C && s[2] * s[3] == T) || (s.size() == 3 && s[1] == T && s[2] == C),
            path, ": tensor 'noise' has shape ", s.str(), ", expected (N, ", C,
            ", H, W) with H*W = ", T, " or (N, ", T, ", ", C, ")");
  samples_ = s[0];
  if (file_.contains("sde_noise")) {
    sde_ = as_f32(file_.get("sde_noise"));
    const Shape& q = sde_.shape();
    sde_nchw_ = q.size() == 5;
    RAE_CHECK((sde_nchw_ && q[1] == samples_ && q[2] == C && q[3] * q[4] == T) ||
                  (q.size() == 4 && q[1] == samples_ && q[2] == T && q[3] == C),
              path, ": tensor 'sde_noise' has shape ", q.str(), ", expected (S, ", samples_, ", ",
              C, ", H, W) or (S, ", samples_, ", ", T, ", ", C, ")");
    sde_steps_ = q[0];
  }
}

void NoiseFile::fill(const Tensor& src, bool nchw, int64_t offset, const Tensor& out,
                     const std::vector<int64_t>& ids) const {
  const int64_t T = tokens_, C = channels_, D = T * C;
  Tensor host = Tensor::empty(out.shape());
  const float* s = src.data<float>();
  float* d = host.data<float>();
  for (size_t b = 0; b < ids.size(); ++b) {
    RAE_CHECK(ids[b] >= 0 && ids[b] < samples_, path_, ": sample ", ids[b], " is past the ",
              samples_, " samples of the noise file");
    const float* row = s + (offset + ids[b]) * D;
    float* o = d + static_cast<int64_t>(b) * D;
    if (!nchw) {
      std::copy(row, row + D, o);
    } else {  // (C, H*W) -> (T, C)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < T; ++t) o[t * C + c] = row[c * T + t];
    }
  }
  Tensor(out).copy_from(host);
}

void NoiseFile::fill_initial(const Tensor& out, const std::vector<int64_t>& ids) const {
  fill(noise_, nchw_, 0, out, ids);
}

void NoiseFile::fill_sde(int step, const Tensor& out, const std::vector<int64_t>& ids) const {
  RAE_CHECK(step < sde_steps_, path_, ": the SDE needs noise for step ", step,
            " but 'sde_noise' holds ", sde_steps_, " steps (", sde_.defined() ? "" : "absent", ")");
  fill(sde_, sde_nchw_, static_cast<int64_t>(step) * samples_, out, ids);
}

}  // namespace rae::sampling
