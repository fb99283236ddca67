#include "sampling/velocity.h"

#include "core/error.h"

namespace rae::sampling {

diffusion::Velocity dit_velocity(models::DiTDH& model, Device device, DType act_dtype) {
  auto arena = std::make_shared<nn::Arena>(device, size_t(64) << 20, act_dtype);
  models::DiTDH* m = &model;
  return [m, arena, device](const Tensor& out, const Tensor& x, double t, const Tensor& y) {
    const int64_t B = x.dim(0);
    // The release broadcasts the float32 grid value over the batch.
    Tensor tt = Tensor::full({B}, static_cast<float>(t), DType::F32).to(device);
    arena->reset();
    m->forward(*arena, out, x, tt, y);
  };
}

}  // namespace rae::sampling
