// Class agreement (eval/class_agreement.h): a hand-worked case, invariance to each row's scale,
// errors naming the sample, and `rae eval agreement` end to end on real images (samples that are
// the reference images score as the reference does; shifted labels score near zero; --per-class).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/image_preprocess.h"
#include "eval/class_agreement.h"
#include "io/npz.h"
#include "support/util.h"

namespace rae {
namespace {

Tensor rows(const std::vector<std::vector<float>>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size()), static_cast<int64_t>(v[0].size())});
  for (size_t i = 0; i < v.size(); ++i)
    std::copy(v[i].begin(), v[i].end(), t.data<float>() + i * v[0].size());
  return t;
}

// Class 0 near (1, 0), class 1 near (0, 1); samples 2 and 3 sit at the other class.
TEST(ClassAgreement, HandWorkedCase) {
  const Tensor ref = rows({{1, 0.1f}, {2, -0.1f}, {0.1f, 1}, {-0.2f, 3}});
  const Tensor smp = rows({{1, 0.2f}, {0.1f, 5}, {0, 1}, {4, 0}});
  const eval::ClassAgreement a = eval::class_agreement(ref, {0, 0, 1, 1}, smp, {0, 1, 0, 1}, 2);
  EXPECT_EQ(a.agreeing, 2);
  EXPECT_DOUBLE_EQ(a.agreement, 0.5);
  EXPECT_DOUBLE_EQ(a.chance, 0.5);
  EXPECT_DOUBLE_EQ(a.reference_agreement, 1.0);
  EXPECT_EQ(a.confusion, (std::vector<std::vector<int64_t>>{{1, 1}, {1, 1}}));
  EXPECT_EQ(a.per_class_agreeing, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(a.to_json().at("class_agreement").get<double>(), 0.5);
}

// Cosine: scaling any row (reference or sample) by a positive factor changes nothing.
TEST(ClassAgreement, InvariantToRowScale) {
  Tensor ref = test::randn({60, 8}, 1), smp = test::randn({40, 8}, 2);
  std::vector<int32_t> rl, sl;
  for (int i = 0; i < 60; ++i) rl.push_back(i % 3);
  for (int i = 0; i < 40; ++i) sl.push_back((i * 7) % 3);
  const eval::ClassAgreement a = eval::class_agreement(ref, rl, smp, sl, 3);
  for (int i = 0; i < 60; ++i)
    for (int d = 0; d < 8; ++d) ref.data<float>()[i * 8 + d] *= 1.0f + static_cast<float>(i);
  for (int i = 0; i < 40; ++i)
    for (int d = 0; d < 8; ++d) smp.data<float>()[i * 8 + d] *= 0.01f * (1 + i % 5);
  const eval::ClassAgreement b = eval::class_agreement(ref, rl, smp, sl, 3);
  EXPECT_EQ(a.confusion, b.confusion);
}

TEST(ClassAgreement, ErrorsNameTheRow) {
  const Tensor ref = rows({{1, 0}, {0, 1}});
  EXPECT_THROW(
      {
        try {
          eval::class_agreement(ref, {0, 1}, rows({{1, 0}, {0, 1}}), {0, 5}, 2);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("sample 1 has label 5, outside [0, 2)"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);
  EXPECT_THROW(eval::class_agreement(ref, {0, 0}, ref, {0, 1}, 2), Error);  // class 1: no images
}

// samples.npz made of the reference images themselves (32 px center crops) with their labels:
// the samples' agreement is the reference's; labels shifted by one class score (almost) nothing.
TEST(ClassAgreementCli, RealImagesScoreAsTheReference) {
  const std::string dir = test::make_temp_dir("eval_agreement_cli");
  std::string out;
  ASSERT_EQ(test::run_rae("make-dataset --out " + dir + "/d --classes 5 --per-class 6", &out), 0)
      << out;
  const data::ImageFolderList list = data::list_image_folder(dir + "/d");
  const int64_t N = static_cast<int64_t>(list.entries.size()), S = 32;
  Tensor images = Tensor::empty({N, S, S, 3}, DType::U8);
  Tensor labels = Tensor::empty({N}, DType::I32), shifted = Tensor::empty({N}, DType::I32);
  for (int64_t i = 0; i < N; ++i) {
    const data::Image im =
        data::center_crop_arr(data::decode_image_file(list.entries[i].path), static_cast<int>(S));
    std::copy(im.pixels.begin(), im.pixels.end(), images.data<uint8_t>() + i * S * S * 3);
    labels.data<int32_t>()[i] = list.entries[i].label;
    shifted.data<int32_t>()[i] = (list.entries[i].label + 1) % 5;
  }
  for (auto [name, l] : {std::pair{"same", labels}, std::pair{"shifted", shifted}}) {
    npz::Writer w(dir + "/" + name + ".npz");
    w.add("arr_0", images);
    w.add("labels", l);
    w.commit();
  }
  const std::string base = "eval agreement --encoder tiny-random --data " + dir + "/d --samples ";
  ASSERT_EQ(test::run_rae(base + dir + "/same.npz --out " + dir + "/same.json", &out), 0) << out;
  EXPECT_NE(out.find("class agreement: "), std::string::npos) << out;
  const auto same = nlohmann::json::parse(test::read_text(dir + "/same.json"));
  EXPECT_DOUBLE_EQ(same.at("class_agreement").get<double>(),
                   same.at("reference_agreement").get<double>());
  EXPECT_GE(same.at("class_agreement").get<double>(), 0.9);  // the classes differ in colour
  EXPECT_DOUBLE_EQ(same.at("chance").get<double>(), 0.2);
  EXPECT_EQ(same.at("reference_images").get<int>(), 30);
  // --per-class 2: 2 reference images of each class, evenly spread.
  ASSERT_EQ(test::run_rae(base + dir + "/same.npz --per-class 2 --out " + dir + "/pc.json", &out),
            0)
      << out;
  EXPECT_EQ(
      nlohmann::json::parse(test::read_text(dir + "/pc.json")).at("reference_images").get<int>(),
      10);
  ASSERT_EQ(test::run_rae(base + dir + "/shifted.npz --out " + dir + "/shifted.json", &out), 0)
      << out;
  const auto sh = nlohmann::json::parse(test::read_text(dir + "/shifted.json"));
  EXPECT_LE(sh.at("class_agreement").get<double>(), 0.1);
  // samples.npz without labels (another tool's) is refused, naming the file.
  {
    npz::Writer w(dir + "/nolabels.npz");
    w.add("arr_0", images);
    w.commit();
  }
  EXPECT_EQ(test::run_rae(base + dir + "/nolabels.npz --out " + dir + "/x.json", &out), 1);
  EXPECT_NE(out.find("nolabels.npz: no 'labels' array"), std::string::npos) << out;
}

}  // namespace
}  // namespace rae
