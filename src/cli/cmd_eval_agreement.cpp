// rae eval agreement --encoder E --data DIR --samples samples.npz --out metrics.json
// Class agreement of class-conditional samples (eval/class_agreement.h): the reference images
// (an ImageFolder split, the class of each from its folder) and the samples (`rae sample`'s
// samples.npz: arr_0 (N, S, S, 3) u8 and labels (N) i32) go through the same preprocessing (ADM
// center crop to S, bicubic resize to the encoder input, the encoder's normalisation) and the
// frozen encoder; each image's feature is its mean-pooled tokens.
#include <boost/program_options.hpp>
#include <cstdio>
#include <functional>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/image_preprocess.h"
#include "eval/class_agreement.h"
#include "io/npz.h"
#include "models/vit_encoder.h"

namespace po = boost::program_options;

namespace rae::cli {

namespace {

// Mean-pooled encoder tokens of N images that `image(i)` produces (S x S RGB each), encoded in
// batches so that only one batch of images is in memory: (N, hidden) F32.
Tensor encoder_features(const models::VitEncoder& enc, int64_t N, int64_t batch,
                        const std::function<data::Image(int64_t)>& image) {
  const auto& ec = enc.config();
  const int64_t H = ec.hidden, in = ec.input_size;
  Tensor out = Tensor::empty({N, H});  // (N, H)
  for (int64_t b0 = 0; b0 < N; b0 += batch) {
    const int64_t nb = std::min(batch, N - b0);
    Tensor px = Tensor::empty({nb, 3, in, in});  // (B, 3, in, in)
    for (int64_t i = 0; i < nb; ++i) {
      std::vector<float> x =
          data::to_encoder_input(image(b0 + i), static_cast<int>(in), ec.mean, ec.std);
      std::copy(x.begin(), x.end(), px.data<float>() + i * 3 * in * in);
    }
    Tensor z = enc.forward(px).to(Device::cpu());  // (B, T, H)
    const int64_t T = z.dim(1);
    for (int64_t i = 0; i < nb; ++i) {
      float* f = out.data<float>() + (b0 + i) * H;
      for (int64_t h = 0; h < H; ++h) {
        double s = 0;
        for (int64_t t = 0; t < T; ++t) s += z.data<float>()[(i * T + t) * H + h];
        f[h] = static_cast<float>(s / static_cast<double>(T));
      }
    }
  }
  return out;
}

// At most `per_class` entries of each class (0: all), evenly spread over the class's entries.
std::vector<data::ImageEntry> per_class_subset(const data::ImageFolderList& list, int64_t per_class,
                                               int64_t classes) {
  if (per_class <= 0) return list.entries;
  std::vector<std::vector<data::ImageEntry>> by_class(static_cast<size_t>(classes));
  for (const auto& e : list.entries) by_class[e.label].push_back(e);
  std::vector<data::ImageEntry> out;
  for (const auto& c : by_class) {
    const int64_t n = static_cast<int64_t>(c.size()), k = std::min(per_class, n);
    for (int64_t i = 0; i < k; ++i) out.push_back(c[i * n / k]);
  }
  return out;
}

}  // namespace

int cmd_eval_agreement(int argc, char** argv) {
  po::options_description d(
      "rae eval agreement: the share of class-conditional samples whose nearest class centroid "
      "in a frozen encoder's feature space is their own class");
  // clang-format off
  d.add_options()
      ("help,h", "show this help")
      ("encoder", po::value<std::string>(), "HF encoder directory or preset (tiny-random)")
      ("data", po::value<std::string>(), "reference ImageFolder root (DIR/<split>/<class>/*)")
      ("split", po::value<std::string>()->default_value("train"), "reference split folder")
      ("samples", po::value<std::string>(), "rae sample's samples.npz (arr_0 and labels)")
      ("out", po::value<std::string>(), "metrics.json to write")
      ("per-class", po::value<int64_t>()->default_value(0),
       "reference images per class, evenly spread (0: all; e.g. 50 for ImageNet train)")
      ("encoder-input", po::value<int64_t>()->default_value(0), "encoder input size (0: default)")
      ("batch", po::value<int64_t>()->default_value(32), "images per encoder forward");
  // clang-format on
  po::variables_map vm;
  if (!parse_options(d, argc, argv, vm)) return 0;
  require(vm, {"encoder", "data", "samples", "out"});
  const int64_t batch = vm["batch"].as<int64_t>();
  RAE_CHECK(batch > 0, "--batch must be > 0");

  const std::string samples_path = vm["samples"].as<std::string>();
  npz::Reader npz(samples_path);
  RAE_CHECK(npz.contains("labels"), samples_path,
            ": no 'labels' array (rae sample writes one beside arr_0)");
  const Tensor images = npz.read("arr_0");  // (N, S, S, 3) u8
  RAE_CHECK(images.dtype() == DType::U8 && images.ndim() == 4 && images.dim(1) == images.dim(2) &&
                images.dim(3) == 3,
            samples_path, ": arr_0 must be (N, S, S, 3) uint8 images, got ", images.str());
  const int64_t N = images.dim(0), S = images.dim(1);
  const Tensor labels_t = npz.read("labels", DType::I32, {N});
  std::vector<int32_t> sample_labels(labels_t.data<int32_t>(), labels_t.data<int32_t>() + N);

  models::EncoderLoadOptions eo;
  eo.input_size = vm["encoder-input"].as<int64_t>();
  const models::VitEncoder enc = models::VitEncoder::load(vm["encoder"].as<std::string>(), eo);

  const std::string root = vm["data"].as<std::string>();
  const data::ImageFolderList list = data::list_image_folder(root, vm["split"].as<std::string>());
  RAE_CHECK(!list.entries.empty(), root, ": no images found");
  const int64_t K = static_cast<int64_t>(list.classes.size());
  const std::vector<data::ImageEntry> refs =
      per_class_subset(list, vm["per-class"].as<int64_t>(), K);
  std::vector<int32_t> ref_labels;
  for (const auto& e : refs) ref_labels.push_back(e.label);
  const Tensor ref_features =
      encoder_features(enc, static_cast<int64_t>(refs.size()), batch, [&](int64_t i) {
        return data::center_crop_arr(data::decode_image_file(refs[i].path), static_cast<int>(S));
      });
  const Tensor sample_features = encoder_features(enc, N, batch, [&](int64_t i) {
    data::Image im = data::Image::make(static_cast<int>(S), static_cast<int>(S), 3);
    std::copy_n(images.data<uint8_t>() + i * S * S * 3, S * S * 3, im.pixels.begin());
    return im;
  });
  const eval::ClassAgreement a =
      eval::class_agreement(ref_features, ref_labels, sample_features, sample_labels, K);
  nlohmann::json j = a.to_json();
  j["encoder"] = enc.id();
  j["reference"] = list.root;
  j["reference_images"] = ref_labels.size();
  j["samples_file"] = samples_path;
  write_file_atomic(vm["out"].as<std::string>(), j.dump(2) + "\n");
  std::printf("class agreement: %.2f (chance %.2f; real images %.2f) over %lld samples -> %s\n",
              a.agreement, a.chance, a.reference_agreement, static_cast<long long>(a.samples),
              vm["out"].as<std::string>().c_str());
  return 0;
}

}  // namespace rae::cli
