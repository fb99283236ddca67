// The cache job's encode pipeline (data/encode_pipeline.h) on the CPU: batches of the given size
// in order (the last one partial, its flips moved next to its plain views) give exactly the
// latents of one direct forward per batch; several runs reuse the slots; an error of the sink
// comes back from end(); cancel() drops queued work; busy time and image counts add up.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

#include "core/device.h"
#include "data/encode_pipeline.h"
#include "models/vit_encoder.h"
#include "support/util.h"

using namespace rae;

namespace {

struct Got {
  std::vector<Tensor> plain, flip;
  std::vector<int32_t> labels;
};

TEST(EncodePipeline, BatchesInOrderMatchDirectForwards) {
  models::VitEncoder enc = models::VitEncoder::load("tiny-random");
  const int64_t S = enc.config().input_size, plane = 3 * S * S, n = 11, B = 4;
  Tensor img = test::randn({n, 3, S, S}, 5), flipped = test::randn({n, 3, S, S}, 6);
  data::EncodePipeline pipe(enc, B, true, 2);  // 2 slots: add() has to wait for the threads
  for (int run = 0; run < 2; ++run) {          // the second run reuses the slots
    Got got;
    pipe.begin([&](const Tensor& z, const Tensor& zf, const Tensor& labels) {
      got.plain.push_back(z.clone());
      got.flip.push_back(zf.clone());
      for (int64_t i = 0; i < labels.numel(); ++i) got.labels.push_back(labels.data<int32_t>()[i]);
    });
    for (int64_t i = 0; i < n; ++i)
      pipe.add(img.data<float>() + i * plane, flipped.data<float>() + i * plane,
               static_cast<int32_t>(100 * run + i));
    pipe.end();
    ASSERT_EQ(got.plain.size(), 3u);  // 4 + 4 + 3
    for (int64_t b = 0, first = 0; b < 3; ++b) {
      const int64_t m = std::min(B, n - first);
      // The synchronous loop's batch: plain views then flips, one forward.
      Tensor px = Tensor::empty({2 * m, 3, S, S});
      std::memcpy(px.data<float>(), img.data<float>() + first * plane, m * plane * 4);
      std::memcpy(px.data<float>() + m * plane, flipped.data<float>() + first * plane,
                  m * plane * 4);
      Tensor z = enc.forward(px);
      ASSERT_EQ(got.plain[b].dim(0), m);
      EXPECT_EQ(std::memcmp(got.plain[b].raw(), z.raw(), got.plain[b].nbytes()), 0) << b;
      EXPECT_EQ(std::memcmp(got.flip[b].raw(), z.narrow(0, m, m).raw(), got.flip[b].nbytes()), 0)
          << b;
      first += m;
    }
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(got.labels[i], 100 * run + i);
  }
  EXPECT_EQ(pipe.images(), 2 * n);
  EXPECT_GT(pipe.busy_seconds(), 0.0);
}

TEST(EncodePipeline, SinkErrorComesBackAndCancelDropsWork) {
  models::VitEncoder enc = models::VitEncoder::load("tiny-random");
  const int64_t S = enc.config().input_size;
  Tensor img = test::randn({1, 3, S, S}, 7);
  {
    data::EncodePipeline pipe(enc, 2, false);
    pipe.begin([](const Tensor&, const Tensor& zf, const Tensor&) {
      EXPECT_FALSE(zf.defined());  // no flips
      throw std::runtime_error("disk full");
    });
    for (int i = 0; i < 5; ++i) pipe.add(img.data<float>(), nullptr, i);
    try {
      pipe.end();
      FAIL() << "the sink's error was lost";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
    }
  }
  data::EncodePipeline pipe(enc, 2, false);
  int calls = 0;
  pipe.begin([&](const Tensor&, const Tensor&, const Tensor&) { ++calls; });
  pipe.add(img.data<float>(), nullptr, 0);  // a partial batch, never submitted
  pipe.cancel();
  EXPECT_EQ(calls, 0);
  pipe.begin([&](const Tensor&, const Tensor&, const Tensor& labels) {
    ++calls;
    EXPECT_EQ(labels.numel(), 1);  // the cancelled image is gone
  });
  pipe.add(img.data<float>(), nullptr, 9);
  pipe.end();
  EXPECT_EQ(calls, 1);
}

}  // namespace

// On a GPU (skipped without one): pinned slots, the copy stream and the events give the latents
// of a direct forward of the same batch, bit for bit, and the GPU-busy time is measured.
TEST(EncodePipeline, CudaMatchesDirectForwards) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  models::EncoderLoadOptions eo;
  eo.device = Device::cuda();
  models::VitEncoder enc = models::VitEncoder::load("tiny-random", eo);
  const int64_t S = enc.config().input_size, plane = 3 * S * S, n = 7, B = 3;
  Tensor img = test::randn({n, 3, S, S}, 8), flipped = test::randn({n, 3, S, S}, 9);
  data::EncodePipeline pipe(enc, B, true, 3);
  std::vector<Tensor> plain, flip;
  pipe.begin([&](const Tensor& z, const Tensor& zf, const Tensor&) {
    plain.push_back(z.clone());
    flip.push_back(zf.clone());
  });
  for (int64_t i = 0; i < n; ++i)
    pipe.add(img.data<float>() + i * plane, flipped.data<float>() + i * plane, 0);
  pipe.end();
  ASSERT_EQ(plain.size(), 3u);
  for (int64_t b = 0, first = 0; b < 3; ++b) {
    const int64_t m = std::min(B, n - first);
    Tensor px = Tensor::empty({2 * m, 3, S, S});
    std::memcpy(px.data<float>(), img.data<float>() + first * plane, m * plane * 4);
    std::memcpy(px.data<float>() + m * plane, flipped.data<float>() + first * plane, m * plane * 4);
    Tensor z = enc.forward(px).to(Device::cpu());
    EXPECT_EQ(std::memcmp(plain[b].raw(), z.raw(), plain[b].nbytes()), 0) << b;
    EXPECT_EQ(std::memcmp(flip[b].raw(), z.narrow(0, m, m).raw(), flip[b].nbytes()), 0) << b;
    first += m;
  }
  EXPECT_GT(pipe.busy_seconds(), 0.0);
}
