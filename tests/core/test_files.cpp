// core/atomic_file.h (the one atomic writer) and Tensor::data<T>()'s refusal of device memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "support/util.h"
#include "tensor/tensor.h"

using namespace rae;
namespace fs = std::filesystem;

namespace {
std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST(AtomicFile, WritesReplacesAndLeavesNoTemporary) {
  const std::string dir = test::make_temp_dir("atomic"), p = dir + "/f.json";
  write_file_atomic(p, "first");
  EXPECT_EQ(slurp(p), "first");
  write_file_atomic(p, std::string(100000, 'x'));
  EXPECT_EQ(slurp(p), std::string(100000, 'x'));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

// An exception before commit() (a failed write, a bad value) leaves the old file and no .tmp.
TEST(AtomicFile, AbandonedWriteKeepsTheOldFile) {
  const std::string dir = test::make_temp_dir("atomic_abandon"), p = dir + "/f.bin";
  write_file_atomic(p, "old");
  try {
    AtomicFile f(p);
    f.write("new but", 7);
    EXPECT_TRUE(fs::exists(p + ".tmp"));
    throw Error("failure half-way");
  } catch (const Error&) {
  }
  EXPECT_EQ(slurp(p), "old");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

TEST(AtomicFile, ErrorsNameThePath) {
  try {
    write_file_atomic("/nonexistent-dir-for-rae/x.json", "x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-for-rae/x.json.tmp"), std::string::npos)
        << e.what();
  }
}

TEST(AtomicFile, RenameDurableMovesDirectories) {
  const std::string dir = test::make_temp_dir("atomic_dir");
  fs::create_directories(dir + "/.tmp-a");
  write_file_atomic(dir + "/.tmp-a/x", "1");
  rename_durable(dir + "/.tmp-a", dir + "/a");
  EXPECT_EQ(slurp(dir + "/a/x"), "1");
  EXPECT_FALSE(fs::exists(dir + "/.tmp-a"));
}

// A tensor that claims to live on cuda:0 (host memory behind it; never dereferenced).
TEST(Tensor, DataRefusesDeviceTensors) {
  auto buf = std::make_shared<std::vector<float>>(4);
  Tensor t = Tensor::from_blob(buf->data(), {4}, DType::F32, Device::cuda(0), buf);
  try {
    (void)t.data<float>();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cuda"), std::string::npos) << m;
    EXPECT_NE(m.find("host code cannot read device memory"), std::string::npos) << m;
  }
  EXPECT_NE(t.raw(), nullptr);  // raw() (the device address for kernels) stays available
  Tensor h = Tensor::zeros({4});
  EXPECT_THROW(h.data<double>(), Error);
  EXPECT_NO_THROW(h.data<float>());
}
