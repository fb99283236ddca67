// The encoders against Hugging Face transformers: tests/reference/make_encoder_goldens.py saves
// random-initialized small Dinov2WithRegistersModel, SiglipVisionModel and ViTMAEModel checkpoints
// (save_pretrained layout) with input pixels and RAE-style reference features (final LayerNorm
// without affine, CLS/registers dropped; MAE with mask ratio 0 and no shuffling; HF position
// interpolation: DINOv2 10x10 -> 8x8 antialiased, MAE 7x7 -> 8x8, SigLIP native).
// Tolerance: 1e-4 absolute on features of unit scale (fp32 both sides; the difference is
// summation order in GEMM/attention and the layer scale folded into the output projections).
#include <gtest/gtest.h>

#include "core/device.h"
#include "io/safetensors.h"
#include "models/vit_encoder.h"
#include "support/util.h"

using namespace rae;
using namespace rae::models;

namespace {

void check_golden(const std::string& name, EncoderFamily family, Device device = Device::cpu()) {
  const std::string dir = test::golden_path("encoders/" + name);
  safetensors::File ref = safetensors::load(dir + "/reference.safetensors");
  Tensor pixels = ref.get("pixels").clone();
  Tensor expect = ref.get("features");
  EncoderLoadOptions opts;
  opts.input_size = std::stoi(ref.metadata.at("input_size"));
  opts.device = device;
  VitEncoder enc = VitEncoder::load(dir, opts);
  EXPECT_EQ(enc.config().family, family);
  Tensor got = enc.forward(pixels.to(device)).to(Device::cpu());
  ASSERT_EQ(got.shape(), expect.shape()) << name;
  double diff = test::max_abs_diff(got, expect);
  EXPECT_LT(diff, 1e-4) << name;
  std::printf("%s on %s: max |ours - HF| = %.3g\n", name.c_str(), device.str().c_str(), diff);
}

}  // namespace

TEST(EncodersGolden, Dinov2WithRegisters) {
  check_golden("dinov2-reg-tiny", EncoderFamily::Dinov2);
}
TEST(EncodersGolden, SiglipVision) {
  check_golden("siglip-tiny", EncoderFamily::Siglip);
}
TEST(EncodersGolden, MaeNoMasking) {
  check_golden("mae-tiny", EncoderFamily::Mae);
}

// The same goldens through the CUDA ops (default fp32 GEMMs, so the same 1e-4 tolerance); skipped
// without a GPU.
TEST(EncodersGolden, Dinov2WithRegistersCuda) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  check_golden("dinov2-reg-tiny", EncoderFamily::Dinov2, Device::cuda());
}
TEST(EncodersGolden, SiglipVisionCuda) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  check_golden("siglip-tiny", EncoderFamily::Siglip, Device::cuda());
}
TEST(EncodersGolden, MaeNoMaskingCuda) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  check_golden("mae-tiny", EncoderFamily::Mae, Device::cuda());
}
