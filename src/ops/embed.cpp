// Dispatch and argument checks for embeddings and patchify/unpatchify
// (sincos_pos_embed_2d is a host function: the table is built once on the CPU).
#include "ops/embed.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

void sincos_pos_embed_2d(const Tensor& out, int64_t grid_h, int64_t grid_w) {
  const char* op = "sincos_pos_embed_2d";
  check::ndim(out, 2, op, "out");
  RAE_CHECK(grid_h > 0 && grid_w > 0, op, ": grid must be positive, got ", grid_h, "x", grid_w);
  RAE_CHECK(out.dim(0) == grid_h * grid_w, op, ": argument 'out' has ", out.dim(0),
            " rows, expected grid ", grid_h, "x", grid_w, " = ", grid_h * grid_w);
  RAE_CHECK(out.dim(1) % 4 == 0, op, ": embedding dim ", out.dim(1), " must be a multiple of 4");
  RAE_CHECK(out.device().is_cpu(), op,
            ": 'out' must be a CPU tensor (build on the CPU, then copy)");
  RAE_CHECK(out.dtype() == DType::F32 || out.dtype() == DType::F64, op,
            ": 'out' must be f32 or f64, got ", dtype_name(out.dtype()));
  check::contiguous(out, op, "out");
  cpu::sincos_pos_embed_2d(out, grid_h, grid_w);
}

void fourier_features(const Tensor& out, const Tensor& t, const Tensor& W) {
  const char* op = "fourier_features";
  check::is_float(out, op, "out");
  check::ndim(out, 2, op, "out");
  check::contiguous(out, op, "out");
  for (auto [x, name] : {std::pair<const Tensor&, const char*>{t, "t"}, {W, "W"}}) {
    check::same_device(x, out, op, name);
    check::ndim(x, 1, op, name);
    check::contiguous(x, op, name);
    RAE_CHECK(x.dtype() == DType::F32 || x.dtype() == out.dtype(), op, ": argument '", name,
              "' must be f32 or ", dtype_name(out.dtype()), ", got ", dtype_name(x.dtype()));
  }
  check::shape(out, {t.dim(0), 2 * W.dim(0)}, op, "out");
  RAE_DISPATCH(out, fourier_features, out, t, W);
}

namespace {
void check_embedding(const char* op, const Tensor& table, const char* table_name,
                     const Tensor& rows, const char* rows_name, const Tensor& labels) {
  check::is_float(table, op, table_name);
  check::ndim(table, 2, op, table_name);
  check::contiguous(table, op, table_name);
  check::same_device(labels, table, op, "labels");
  check::dtype(labels, DType::I32, op, "labels");
  check::ndim(labels, 1, op, "labels");
  check::contiguous(labels, op, "labels");
  check::like(rows, table, op, rows_name);
  check::shape(rows, {labels.dim(0), table.dim(1)}, op, rows_name);
  check::rows(rows, op, rows_name);
}
}  // namespace

void embedding_forward(const Tensor& out, const Tensor& table, const Tensor& labels) {
  check_embedding("embedding_forward", table, "table", out, "out", labels);
  RAE_DISPATCH(table, embedding_forward, out, table, labels);
}

void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& labels) {
  if (!dtable.defined()) return;
  check_embedding("embedding_backward", dtable, "dtable", dout, "dout", labels);
  RAE_DISPATCH(dtable, embedding_backward, dtable, dout, labels);
}

namespace {
void check_patch(const char* op, const Tensor& img, const Tensor& tokens, int64_t p) {
  check::is_float(img, op, "img");
  check::ndim(img, 4, op, "img");
  check::contiguous(img, op, "img");
  RAE_CHECK(p > 0 && img.dim(2) % p == 0 && img.dim(3) % p == 0, op, ": image ", img.shape().str(),
            " is not divisible into patches of ", p);
  check::like(tokens, img, op, "tokens");
  check::shape(tokens, {img.dim(0), (img.dim(2) / p) * (img.dim(3) / p), p * p * img.dim(1)}, op,
               "tokens");
  check::contiguous(tokens, op, "tokens");
}
}  // namespace

void patchify(const Tensor& tokens, const Tensor& img, int64_t p) {
  check_patch("patchify", img, tokens, p);
  RAE_DISPATCH(img, patchify, tokens, img, p);
}

void unpatchify(const Tensor& img, const Tensor& tokens, int64_t p) {
  check_patch("unpatchify", img, tokens, p);
  RAE_DISPATCH(img, unpatchify, img, tokens, p);
}

}  // namespace rae::ops
