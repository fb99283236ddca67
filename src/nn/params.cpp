#include "nn/params.h"

#include <set>

#include "core/error.h"

namespace rae::nn {

int ParamStore::begin_group(const std::string& name) {
  RAE_CHECK(!allocated_, "ParamStore: begin_group after allocate");
  groups_.push_back(ParamGroup{name, 0, {}, {}, {}});
  return static_cast<int>(groups_.size()) - 1;
}

int ParamStore::add(const std::string& name, const Shape& shape, bool packed) {
  RAE_CHECK(!allocated_, "ParamStore: add after allocate");
  RAE_CHECK(!groups_.empty(), "ParamStore: add '", name, "' before begin_group");
  RAE_CHECK(!by_name_.count(name), "ParamStore: duplicate name ", name);
  ParamGroup& g = groups_.back();
  int id = static_cast<int>(params_.size());
  const int64_t offset = packed ? g.numel : (g.numel + kParamAlign - 1) / kParamAlign * kParamAlign;
  params_.push_back(ParamInfo{name, shape, static_cast<int>(groups_.size()) - 1, offset});
  g.numel = offset + shape.numel();
  g.params.push_back(id);
  by_name_[name] = id;
  return id;
}

int ParamStore::add_buffer(const std::string& name, const Shape& shape) {
  RAE_CHECK(!allocated_, "ParamStore: add_buffer after allocate");
  RAE_CHECK(!by_name_.count(name), "ParamStore: duplicate name ", name);
  int id = static_cast<int>(buffer_names_.size());
  buffer_names_.push_back(name);
  buffer_shapes_.push_back(shape);
  by_name_[name] = -(id + 2);
  return id;
}

void ParamStore::allocate(Device device) {
  RAE_CHECK(!allocated_, "ParamStore: allocate twice");
  for (auto& g : groups_) {
    g.data = Tensor::zeros({g.numel}, DType::F32, device);
    g.grad = Tensor::zeros({g.numel}, DType::F32, device);
  }
  for (auto& p : params_) {
    const ParamGroup& g = groups_[p.group];
    values_.push_back(g.data.narrow(0, p.offset, p.shape.numel()).view(p.shape));
    grads_.push_back(g.grad.narrow(0, p.offset, p.shape.numel()).view(p.shape));
  }
  for (auto& s : buffer_shapes_) buffers_.push_back(Tensor::zeros(s, DType::F32, device));
  allocated_ = true;
}

void ParamStore::to_device(Device device) {
  RAE_CHECK(allocated_, "ParamStore: to_device before allocate");
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    bind_group(static_cast<int>(gi), g.data.defined() ? g.data.to(device) : Tensor(),
               g.grad.defined() ? Tensor::zeros({g.numel}, DType::F32, device) : Tensor());
  }
  for (auto& b : buffers_) b = b.to(device);
}

void ParamStore::bind_group(int gi, const Tensor& data, const Tensor& grad) {
  RAE_CHECK(allocated_, "ParamStore: bind_group before allocate");
  ParamGroup& g = groups_.at(gi);
  RAE_CHECK(!data.defined() || data.numel() == g.numel, "bind_group ", g.name, ": ", data.numel(),
            " elements, expected ", g.numel);
  RAE_CHECK(!grad.defined() || grad.numel() == g.numel, "bind_group ", g.name, ": grad of ",
            grad.numel(), " elements, expected ", g.numel);
  g.data = data, g.grad = grad;
  for (int id : g.params) {
    const ParamInfo& p = params_[id];
    values_[id] =
        data.defined() ? data.narrow(0, p.offset, p.shape.numel()).view(p.shape) : Tensor();
    grads_[id] =
        grad.defined() ? grad.narrow(0, p.offset, p.shape.numel()).view(p.shape) : Tensor();
  }
}

int ParamStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() || it->second < 0 ? -1 : it->second;
}

int64_t ParamStore::num_params() const {
  int64_t n = 0;
  for (auto& p : params_) n += p.shape.numel();
  return n;
}

void ParamStore::zero_grad() {
  for (auto& g : groups_)
    if (g.grad.defined()) g.grad.zero_();  // released groups (ZeRO-2/3) have none
}

std::map<std::string, Tensor> ParamStore::state_dict() const {
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) out[params_[i].name] = values_[i];
  for (size_t i = 0; i < buffers_.size(); ++i) out[buffer_names_[i]] = buffers_[i];
  return out;
}

std::map<std::string, Tensor> ParamStore::views_of(const std::vector<Tensor>& flat) const {
  RAE_CHECK(flat.size() == groups_.size(), "views_of: ", flat.size(), " buffers for ",
            groups_.size(), " groups");
  std::map<std::string, Tensor> out;
  for (auto& p : params_)
    out[p.name] = flat[p.group].narrow(0, p.offset, p.shape.numel()).view(p.shape);
  return out;
}

void ParamStore::load_state_dict(const std::map<std::string, Tensor>& tensors,
                                 const std::string& source, bool strict) {
  std::set<std::string> used;
  auto copy_one = [&](const std::string& name, const Tensor& dst) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      RAE_CHECK(!strict, source, ": missing tensor '", name, "'");
      return;
    }
    const Tensor& src = it->second;
    // The exact shape (not only the count: a transposed tensor of the same size would load
    // as garbage) and a float dtype (integer bits read as weights are garbage too).
    RAE_CHECK(src.shape() == dst.shape(), source, ": tensor '", name, "' has shape ",
              src.shape().str(), ", expected ", dst.shape().str());
    RAE_CHECK(dtype_is_float(src.dtype()), source, ": tensor '", name, "' has dtype ",
              dtype_name(src.dtype()), ", expected a float dtype (f32, bf16, f16 or f64)");
    Tensor s = src.dtype() == DType::F32 ? src : src.cast(DType::F32);
    if (!s.is_contiguous()) s = s.clone();
    Tensor(dst).copy_from(s.view(dst.shape()));
    used.insert(name);
  };
  for (size_t i = 0; i < params_.size(); ++i) copy_one(params_[i].name, values_[i]);
  for (size_t i = 0; i < buffers_.size(); ++i) copy_one(buffer_names_[i], buffers_[i]);
  if (strict)
    for (auto& [name, t] : tensors)
      RAE_CHECK(used.count(name), source, ": unexpected tensor '", name, "'");
}

}  // namespace rae::nn
