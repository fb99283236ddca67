// Sampling noise keyed by the GLOBAL sample index, so a sample's noise does not depend on the
// rank, batch or chunk that draws it: sample g's initial noise is the stream
// (seed, Purpose::Sample, step 0, index g) and its Euler-Maruyama noise of integration step k the
// stream (seed, Purpose::Sample, step k + 1, index g); element i of a stream is entry i of the
// sample's (T, C) token latent. Or the same from a file (--noise-file), for parity tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tensor/tensor.h"

namespace rae::sampling {

// out (B, T, C) F32 on any device: row b from the stream of sample ids[b] at `step`. Drawn on the
// host (in parallel over the batch) and copied.
void fill_keyed_noise(const Tensor& out, uint64_t seed, uint64_t step,
                      const std::vector<int64_t>& ids);

// A noise file (safetensors): "noise" (N, C, H, W) as the release's torch.randn(n, C, H, W), or
// (N, T, C) tokens; optionally "sde_noise" (S, N, C, H, W) or (S, N, T, C), the SDE noise of
// integration step s. Sample ids index N. Errors name the file, the tensor and the shapes.
class NoiseFile {
 public:
  NoiseFile(const std::string& path, int64_t tokens, int64_t channels);
  int64_t samples() const { return samples_; }
  int64_t sde_steps() const { return sde_steps_; }
  void fill_initial(const Tensor& out, const std::vector<int64_t>& ids) const;
  void fill_sde(int step, const Tensor& out, const std::vector<int64_t>& ids) const;

 private:
  // Rows `offset + ids[b]` of src ((rows, C, H*W) when nchw, else (rows, T, C)) into out's rows.
  void fill(const Tensor& src, bool nchw, int64_t offset, const Tensor& out,
            const std::vector<int64_t>& ids) const;
  std::string path_;
  safetensors::File file_;
  Tensor noise_, sde_;  // F32, CPU
  bool nchw_ = false, sde_nchw_ = false;
  int64_t tokens_ = 0, channels_ = 0, samples_ = 0, sde_steps_ = 0;
};

}  // namespace rae::sampling
