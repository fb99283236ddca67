#include "support/util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace rae::test {

// The environment can point at a moved tree (the device check runs binaries built elsewhere).
std::string source_dir() {
  const char* env = std::getenv("RAE_SOURCE_DIR");
  return env && *env ? std::string(env) : std::string(RAE_SOURCE_DIR);
}
std::string golden_path(const std::string& name) {
  return source_dir() + "/tests/goldens/" + name;
}

std::string make_temp_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  namespace fs = std::filesystem;
  const char* env = std::getenv("RAE_TEST_TMP");  // likewise for the scratch root
  fs::path root = env && *env ? fs::path(env) : fs::path(RAE_BINARY_DIR) / "test-tmp";
  fs::path p = root / (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

Tensor randn(const Shape& shape, uint64_t seed, double std, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::F64);
  double* d = t.data<double>();
  rng::Key k{seed, rng::Purpose::Test, 0, 0};
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = std * rng::normal_at(k, i);
  return dtype == DType::F64 ? t : t.cast(dtype);
}

Tensor rand_uniform(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::F64);
  double* d = t.data<double>();
  rng::Key k{seed, rng::Purpose::Test, 1, 0};
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = lo + (hi - lo) * rng::uniform_at(k, i);
  return dtype == DType::F64 ? t : t.cast(dtype);
}

double tolerance_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  RAE_CHECK(a.shape() == b.shape(), "tolerance_ratio: shapes ", a.shape().str(), " vs ",
            b.shape().str());
  Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double u = x.item(i), v = y.item(i);
    if (std::isnan(u) != std::isnan(v)) return INFINITY;
    worst = std::max(worst, std::fabs(u - v) / (atol + rtol * std::fabs(v)));
  }
  return worst;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) worst = std::max(worst, std::fabs(x.item(i) - y.item(i)));
  return worst;
}

std::string python_exe() {
  return RAE_PYTHON_EXE;
}

namespace {

// Runs `cmd` through the shell; its exit status, its stdout+stderr in *out.
int run_shell(const std::string& cmd, std::string* out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int run_python(const std::string& args, std::string* out) {
  return run_shell("'" + python_exe() + "' " + args, out);
}

std::string rae_exe() {
  return std::string(RAE_BINARY_DIR) + "/src/rae";
}

int run_rae(const std::string& args, std::string* out) {
  return run_shell("'" + rae_exe() + "' " + args, out);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace rae::test
