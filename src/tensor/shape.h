// A small fixed-capacity shape/stride vector (no heap allocation per tensor).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace rae {

constexpr int kMaxDims = 8;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    RAE_CHECK(d.size() <= kMaxDims, "too many dimensions: ", d.size());
    for (int64_t v : d) dims_[n_++] = v;
  }
  template <typename It>
  Shape(It begin, It end) {
    for (; begin != end; ++begin) {
      RAE_CHECK(n_ < kMaxDims, "too many dimensions");
      dims_[n_++] = static_cast<int64_t>(*begin);
    }
  }
  int size() const { return n_; }
  // Negative indices count from the end, as in Python.
  int64_t operator[](int i) const { return dims_[wrap(i)]; }
  int64_t& operator[](int i) { return dims_[wrap(i)]; }
  void push_back(int64_t v) {
    RAE_CHECK(n_ < kMaxDims, "too many dimensions");
    dims_[n_++] = v;
  }
  int64_t numel() const {
    int64_t p = 1;
    for (int i = 0; i < n_; ++i) p *= dims_[i];
    return p;
  }
  const int64_t* begin() const { return dims_; }
  const int64_t* end() const { return dims_ + n_; }
  bool operator==(const Shape& o) const {
    if (n_ != o.n_) return false;
    for (int i = 0; i < n_; ++i)
      if (dims_[i] != o.dims_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < n_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + ")";
  }

 private:
  int wrap(int i) const {
    int j = i < 0 ? i + n_ : i;
    RAE_CHECK(j >= 0 && j < n_, "dimension index ", i, " out of range for ", n_, " dims");
    return j;
  }
  int64_t dims_[kMaxDims] = {};
  int n_ = 0;
};

}  // namespace rae
