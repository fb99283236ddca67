// Dispatch and argument checks for the stage-1 noise augmentation.
#include "ops/noise.h"

#include "ops/dispatch.h"
#include "ops/op_checks.h"

namespace rae::ops {

void noise_augment_(const Tensor& z, const Tensor& ids, const NoiseAugKey& key,
                    const Tensor& sigma) {
  const char* op = "noise_augment_";
  check::is_float(z, op, "z");
  check::contiguous(z, op, "z");
  RAE_CHECK(z.ndim() >= 1, op, ": z must have a batch dim, got ", z.str());
  const int64_t B = z.dim(0);
  check::defined(ids, op, "ids");
  check::dtype(ids, DType::I64, op, "ids");
  check::same_device(ids, z, op, "ids");
  check::contiguous(ids, op, "ids");
  check::shape(ids, {B}, op, "ids");
  if (sigma.defined()) {
    check::dtype(sigma, DType::F32, op, "sigma");
    check::same_device(sigma, z, op, "sigma");
    check::contiguous(sigma, op, "sigma");
    check::shape(sigma, {B}, op, "sigma");
  }
  RAE_CHECK(key.tau >= 0, op, ": tau must be >= 0, got ", key.tau);
  if (z.numel() == 0) return;
  RAE_DISPATCH(z, noise_augment_, z, ids, key, sigma);
}

}  // namespace rae::ops
