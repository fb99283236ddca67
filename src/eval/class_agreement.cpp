#include "eval/class_agreement.h"

#include <cmath>

#include "core/error.h"

namespace rae::eval {

namespace {

void check_features(const Tensor& f, const char* what, size_t labels) {
  RAE_CHECK(
      f.defined() && f.ndim() == 2 && f.dtype() == DType::F32 && f.is_contiguous() && !f.is_cuda(),
      "class agreement: ", what, " features must be (N, D) F32 on the CPU, got ",
      f.defined() ? f.str() : std::string("none"));
  RAE_CHECK(static_cast<size_t>(f.dim(0)) == labels, "class agreement: ", f.dim(0), " ", what,
            " rows but ", labels, " labels");
}

void check_label(int32_t y, int64_t classes, const char* what, size_t i) {
  RAE_CHECK(y >= 0 && y < classes, "class agreement: ", what, " ", i, " has label ", y,
            ", outside [0, ", classes, ")");
}

// Scales row r (D floats) to unit length in double; a zero row stays zero.
void normalise(double* row, int64_t D) {
  double n = 0;
  for (int64_t d = 0; d < D; ++d) n += row[d] * row[d];
  n = std::sqrt(n);
  if (n > 0)
    for (int64_t d = 0; d < D; ++d) row[d] /= n;
}

}  // namespace

Tensor class_centroids(const Tensor& features, const std::vector<int32_t>& labels,
                       int64_t classes) {
  check_features(features, "reference", labels.size());
  RAE_CHECK(classes > 0, "class agreement: no classes");
  const int64_t N = features.dim(0), D = features.dim(1);
  std::vector<double> sum(static_cast<size_t>(classes * D), 0.0), row(static_cast<size_t>(D));
  std::vector<int64_t> count(static_cast<size_t>(classes), 0);
  for (int64_t i = 0; i < N; ++i) {
    const int32_t y = labels[static_cast<size_t>(i)];
    check_label(y, classes, "reference row", static_cast<size_t>(i));
    const float* f = features.data<float>() + i * D;
    for (int64_t d = 0; d < D; ++d) row[d] = f[d];
    normalise(row.data(), D);
    for (int64_t d = 0; d < D; ++d) sum[y * D + d] += row[d];
    ++count[y];
  }
  Tensor c = Tensor::empty({classes, D});  // (K, D)
  for (int64_t k = 0; k < classes; ++k) {
    RAE_CHECK(count[k] > 0, "class agreement: class ", k, " has no reference images");
    normalise(sum.data() + k * D, D);
    for (int64_t d = 0; d < D; ++d) c.data<float>()[k * D + d] = static_cast<float>(sum[k * D + d]);
  }
  return c;
}

std::vector<int32_t> nearest_centroid(const Tensor& features, const Tensor& centroids) {
  const int64_t N = features.dim(0), D = features.dim(1), K = centroids.dim(0);
  RAE_CHECK(centroids.dim(1) == D, "class agreement: features of dimension ", D,
            " against centroids of dimension ", centroids.dim(1));
  std::vector<int32_t> out(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const float* f = features.data<float>() + i * D;
    int32_t best = 0;
    double best_cos = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {  // the row's norm does not change the argmax
      const float* c = centroids.data<float>() + k * D;
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(f[d]) * c[d];
      if (dot > best_cos) best_cos = dot, best = static_cast<int32_t>(k);
    }
    out[static_cast<size_t>(i)] = best;
  }
  return out;
}

ClassAgreement class_agreement(const Tensor& reference, const std::vector<int32_t>& ref_labels,
                               const Tensor& samples, const std::vector<int32_t>& sample_labels,
                               int64_t classes) {
  check_features(samples, "sample", sample_labels.size());
  RAE_CHECK(!sample_labels.empty(), "class agreement: no samples");
  const Tensor centroids = class_centroids(reference, ref_labels, classes);
  ClassAgreement a;
  a.classes = classes;
  a.samples = samples.dim(0);
  a.chance = 1.0 / static_cast<double>(classes);
  a.per_class_samples.assign(classes, 0);
  a.per_class_agreeing.assign(classes, 0);
  a.confusion.assign(classes, std::vector<int64_t>(classes, 0));
  const std::vector<int32_t> nearest = nearest_centroid(samples, centroids);
  for (size_t i = 0; i < nearest.size(); ++i) {
    const int32_t y = sample_labels[i];
    check_label(y, classes, "sample", i);
    ++a.per_class_samples[y];
    ++a.confusion[y][nearest[i]];
    if (nearest[i] == y) ++a.agreeing, ++a.per_class_agreeing[y];
  }
  a.agreement = static_cast<double>(a.agreeing) / static_cast<double>(a.samples);
  const std::vector<int32_t> ref_nearest = nearest_centroid(reference, centroids);
  int64_t ref_hits = 0;
  for (size_t i = 0; i < ref_nearest.size(); ++i) ref_hits += ref_nearest[i] == ref_labels[i];
  a.reference_agreement = static_cast<double>(ref_hits) / static_cast<double>(ref_labels.size());
  return a;
}

nlohmann::json ClassAgreement::to_json() const {
  return {{"class_agreement", agreement},
          {"chance", chance},
          {"reference_agreement", reference_agreement},
          {"classes", classes},
          {"samples", samples},
          {"agreeing", agreeing},
          {"per_class_samples", per_class_samples},
          {"per_class_agreeing", per_class_agreeing},
          {"confusion", confusion},
          {"definition",
           "share of samples whose nearest class centroid (cosine, L2-normalised mean-pooled "
           "encoder tokens of the reference images) is their own class; chance 1/classes"}};
}

}  // namespace rae::eval
