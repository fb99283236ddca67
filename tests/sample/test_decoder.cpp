// The stage-1 decoder against tests/reference/make_decoder_golden.py (the release's
// GeneralDecoder transcribed in PyTorch, float64 from float32 parameters): output, EVERY
// parameter gradient and dL/dz; the parameter names and the fixed position table; the release
// decoder file converted by tools/convert_rae_checkpoint.py loading by name; and the same on
// CUDA (skipped without a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "distributed/sharded_params.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/vit_decoder.h"
#include "support/util.h"

using namespace rae;

namespace {

struct Golden {
  safetensors::File f;
  std::map<std::string, Tensor> params;  // release names, decoder_pos_embed included
};

Golden load_golden() {
  Golden g{safetensors::load(test::golden_path("decoder/micro_decoder.safetensors")), {}};
  for (auto& n : g.f.names)
    if (n.rfind("param.", 0) == 0) g.params[n.substr(6)] = g.f.get(n);
  return g;
}

struct Result {
  Tensor out, dz;  // CPU
};

// out = decoder(z) and the gradients of sum(out * r), on `device`.
Result run(models::VitDecoder& m, const Golden& g, Device device) {
  nn::Arena arena(device);
  Tensor z = g.f.get("in.z").to(device), r = g.f.get("in.r").to(device);
  Tensor out = Tensor::empty(r.shape(), DType::F32, device);
  m.params().zero_grad();
  m.forward(arena, out, z);
  Tensor dz = Tensor::zeros(z.shape(), DType::F32, device);
  m.backward(arena, r, dz);
  return {out.to(Device::cpu()), dz.to(Device::cpu())};
}

double max_abs(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s = std::max(s, std::abs(t.item(i)));
  return s;
}

// Output: f32 against the f64 reference through 2 layers, values O(1): 1e-5 + 1e-4 relative.
// Gradients: atol 1e-5 of the tensor's largest entry plus 1e-3 relative (reductions over up to
// 34 rows), as the DiT golden, with a floor of 1e-7 of the largest gradient overall: the key
// biases have an exactly zero gradient (softmax ignores a per-query constant), which f32
// computes as rounding noise.
void expect_matches(models::VitDecoder& m, const Golden& g, const Result& r, double scale = 1.0) {
  EXPECT_LE(test::tolerance_ratio(r.out, g.f.get("out"), 1e-5 * scale, 1e-4 * scale), 1.0)
      << "max |diff| " << test::max_abs_diff(r.out, g.f.get("out"));
  Tensor gz = g.f.get("grad.z");
  EXPECT_LE(test::tolerance_ratio(r.dz, gz, 1e-5 * scale * max_abs(gz) + 1e-9, 1e-3 * scale), 1.0);
  double global = 0;
  for (auto& p : m.params().params()) global = std::max(global, max_abs(g.f.get("grad." + p.name)));
  int checked = 0;
  for (auto& p : m.params().params()) {
    Tensor ref = g.f.get("grad." + p.name);
    Tensor got = m.params().grad(m.params().find(p.name)).to(Device::cpu()).view(ref.shape());
    double atol = 1e-5 * scale * max_abs(ref) + 1e-7 * global;
    double r_ = test::tolerance_ratio(got, ref, atol, 1e-3 * scale);
    EXPECT_LE(r_, 1.0) << p.name << " max |diff| " << test::max_abs_diff(got, ref);
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(m.params().params().size()));
}

}  // namespace

TEST(DecoderGolden, ReleaseNamesAndPositionTable) {
  Golden g = load_golden();
  models::VitDecoder m(models::decoder_preset("ViT-micro"));
  std::set<std::string> ours, theirs;
  for (auto& [n, t] : m.params().state_dict()) ours.insert(n);
  for (auto& [n, t] : g.params) theirs.insert(n);
  EXPECT_EQ(ours, theirs);
  Tensor pos = m.params().state_dict().at("decoder_pos_embed");
  EXPECT_LE(test::max_abs_diff(pos, g.params.at("decoder_pos_embed")), 1e-7);
  EXPECT_EQ(pos.item(0), 0.0);  // the CLS position row is zero
  // query/key/value are packed (no kParamAlign holes at width 16): one fused qkv operand.
  const auto& ps = m.params();
  auto offset = [&](const std::string& n) { return ps.params()[ps.find(n)].offset; };
  const std::string a = "decoder_layers.1.attention.attention.";
  EXPECT_EQ(offset(a + "key.weight"), offset(a + "query.weight") + 16 * 16);
  EXPECT_EQ(offset(a + "value.weight"), offset(a + "key.weight") + 16 * 16);
  EXPECT_EQ(offset(a + "key.bias"), offset(a + "query.bias") + 16);
  EXPECT_EQ(offset(a + "value.bias"), offset(a + "key.bias") + 16);
}

TEST(DecoderGolden, ForwardAndEveryGradient) {
  Golden g = load_golden();
  models::VitDecoder m(models::decoder_preset("ViT-micro"));
  m.params().load_state_dict(g.params, "micro_decoder.safetensors");
  Result r = run(m, g, Device::cpu());
  expect_matches(m, g, r);
  // Backward accumulates: a second backward on the same forward doubles every gradient.
  nn::Arena arena;
  Tensor z = g.f.get("in.z"), dout = g.f.get("in.r");
  Tensor out = Tensor::empty(dout.shape());
  m.params().zero_grad();
  m.forward(arena, out, z);
  m.backward(arena, dout);
  Tensor once = m.params().groups()[1].grad.clone();
  m.backward(arena, dout);
  Tensor twice = m.params().groups()[1].grad;
  for (int64_t i = 0; i < once.numel(); i += 97)
    EXPECT_NEAR(twice.item(i), 2 * once.item(i), 1e-6 * (1 + std::abs(once.item(i))));
}

TEST(DecoderGolden, ConvertedReleaseFileLoadsByName) {
  Golden g = load_golden();
  auto f = safetensors::load(test::golden_path("decoder/converted_decoder.safetensors"));
  auto spec = models::spec_from_metadata(f.metadata, f.path);
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->type, "ViTDecoder");
  models::VitDecoderConfig c = models::VitDecoderConfig::from_json(spec->config.dump());
  EXPECT_EQ(c.width, 16);
  EXPECT_EQ(c.heads, 2);
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.patch, 4);
  EXPECT_EQ(c.grid, 4);
  EXPECT_EQ(c.latent_channels, 8);
  EXPECT_EQ(c.mlp_hidden, 32);
  models::VitDecoder m(c);
  m.params().load_state_dict(f.tensors, f.path);  // strict: every name known, none missing
  expect_matches(m, g, run(m, g, Device::cpu()));
}

TEST(DecoderGolden, ConfigInferredWithoutMetadata) {
  Golden g = load_golden();
  models::VitDecoderConfig c = models::infer_decoder_config(g.params);
  EXPECT_EQ(c.width, 16);
  EXPECT_EQ(c.heads, 1);  // width 16 is no release preset: width / 64, at least 1
  EXPECT_EQ(c.grid, 4);
  EXPECT_EQ(c.patch, 4);
  models::VitDecoderConfig back = models::VitDecoderConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_THROW(models::VitDecoderConfig::from_json("{\"width\": 16}"), Error);
}

TEST(DecoderGolden, PresetsHaveTheReleaseSizes) {
  // Parameter counts of configs/decoder/ViT{B,L,XL} with 768-channel latents (decoder_pos_embed
  // excluded: a fixed buffer).
  auto count = [](const char* name) {
    return models::VitDecoder(models::decoder_preset(name), false).params().num_params();
  };
  EXPECT_EQ(count("ViT-B"), 86237952);
  EXPECT_EQ(count("ViT-L"), 303887104);
  EXPECT_EQ(count("ViT-XL"), 415056640);
}

// The same golden through the CUDA ops, F32 activations with the default fp32 GEMMs.
TEST(DecoderGolden, CudaMatchesGolden) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  Golden g = load_golden();
  models::VitDecoder m(models::decoder_preset("ViT-micro"));
  m.params().load_state_dict(g.params, "micro_decoder.safetensors");
  m.to(Device::cuda());
  expect_matches(m, g, run(m, g, Device::cuda()));
}

// The decoder as an engine model: the registry builds it from its type and config (presets
// included), and under the sharding core's full_shard hooks (each layer's parameters gathered
// only around its use, released after; a fresh gradient buffer per layer backward) it gives the
// gradients of the plain model; frozen (set_trainable(false)), its backward gives dL/dz only.
TEST(DecoderEngine, RegistryPresetsAndConfig) {
  for (const char* p : {"ViT-B", "ViT-L", "ViT-XL", "ViT-tiny", "ViT-micro"}) {
    models::ModelSpec s = models::model_preset(p);
    EXPECT_EQ(s.type, "ViTDecoder") << p;
    EXPECT_EQ(s.config, nlohmann::json::parse(models::decoder_preset(p).to_json())) << p;
  }
  auto m = models::build_model(models::model_preset("ViT-micro"));
  EXPECT_EQ(m->type(), "ViTDecoder");
  EXPECT_EQ(m->block_groups().size(), 2u);
  auto again = models::build_model({m->type(), m->config()});
  EXPECT_EQ(again->config(), m->config());
  auto& d = models::module_as<models::VitDecoder>(*again, "ViTDecoder", "test");
  EXPECT_EQ(d.image_size(), 16);
  EXPECT_NE(m->summary().find("ViTDecoder"), std::string::npos) << m->summary();
  std::string e = test::error_of([] {
    models::build_model(models::with_overrides(models::model_preset("ViT-micro"), {{"heads", 3}}));
  });
  EXPECT_NE(e.find("heads"), std::string::npos) << e;
}

TEST(DecoderEngine, FullShardHooksGiveThePlainGradients) {
  Golden g = load_golden();
  models::VitDecoder plain(models::decoder_preset("ViT-micro"));
  plain.params().load_state_dict(g.params, "micro_decoder.safetensors");
  const Result ref = run(plain, g, Device::cpu());

  for (bool trainable : {true, false}) {
    SCOPED_TRACE(trainable ? "trainable" : "frozen");
    models::VitDecoder m(models::decoder_preset("ViT-micro"));
    m.params().load_state_dict(g.params, "micro_decoder.safetensors");
    distributed::ShardGroups groups =
        distributed::ShardGroups::make(nullptr, distributed::ShardStrategy::FullShard);
    distributed::ShardingOptions o;
    o.strategy = distributed::ShardStrategy::FullShard;
    o.bucket_numel = 256;  // several buckets per layer
    distributed::ShardedParams sp(m, groups, Device::cpu(), o);
    sp.set_trainable(trainable);
    sp.begin_micro_batch(0, 1);
    // Between micro-batches a layer's parameters are released (gathered on use only).
    EXPECT_FALSE(
        m.params().value(m.params().find("decoder_layers.1.output.dense.weight")).defined());
    nn::Arena arena;
    Tensor z = g.f.get("in.z"), r = g.f.get("in.r");
    Tensor out = Tensor::empty(r.shape());
    m.forward(arena, out, z);
    Tensor dz = Tensor::zeros(z.shape());
    m.backward(arena, r, dz);
    sp.end_micro_batch();
    sp.finish_gradients();
    EXPECT_EQ(test::max_abs_diff(out, ref.out), 0.0);
    EXPECT_EQ(test::max_abs_diff(dz, ref.dz), 0.0);
    if (!trainable) continue;
    int checked = 0;
    for (const auto& piece : sp.pieces(0)) {
      const nn::ParamInfo& info = m.params().params()[piece.param];
      Tensor want = plain.params()
                        .grad(piece.param)
                        .flatten()
                        .narrow(0, piece.begin, piece.end - piece.begin);
      Tensor got = sp.grads()[piece.bucket].narrow(0, piece.shard_offset, piece.end - piece.begin);
      EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << info.name;
      ++checked;
    }
    EXPECT_GE(checked, static_cast<int>(m.params().params().size()));
  }
}
