// Shared test helpers: paths, temporary directories, random tensors.
#pragma once
#include <functional>
#include <string>

#include "core/rng.h"
#include "tensor/tensor.h"

namespace rae::test {

std::string source_dir();                           // repository root
std::string golden_path(const std::string& name);   // tests/goldens/<name>
std::string make_temp_dir(const std::string& tag);  // fresh directory under the build tree
// Deterministic normal(0, std) tensor from the counter-based RNG (CPU).
Tensor randn(const Shape& shape, uint64_t seed, double std = 1.0, DType dtype = DType::F32);
Tensor rand_uniform(const Shape& shape, uint64_t seed, double lo, double hi,
                    DType dtype = DType::F32);
// Max |a - b| / (atol + rtol * |b|) over elements (<= 1 means within tolerance); CPU tensors of any
// float dtype.
double tolerance_ratio(const Tensor& a, const Tensor& b, double atol, double rtol);
double max_abs_diff(const Tensor& a, const Tensor& b);
// The message of the exception `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f);
// The Python the tests run (tests/python/requirements.txt; RAE_PYTHON at configure time).
std::string python_exe();
// Runs `python_exe() args` through the shell; returns its exit status, its stdout+stderr in *out.
int run_python(const std::string& args, std::string* out = nullptr);
// The built `rae` executable, and `rae args` run like run_python (status; stdout+stderr in *out).
std::string rae_exe();
int run_rae(const std::string& args, std::string* out = nullptr);
// A file's whole contents ("" when it cannot be read).
std::string read_text(const std::string& path);

}  // namespace rae::test
