// rae::npz against NumPy: our writer's archives load with np.load (CRC checked by zipfile), and
// np.savez / np.savez_compressed archives load with our reader; row ranges, dtype/shape checks and
// corrupt files give errors naming the file and key.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "io/npz.h"
#include "support/util.h"

namespace rae {
namespace {

// The arrays of npz_numpy.py's expected_arrays().
std::vector<std::pair<std::string, Tensor>> expected_arrays() {
  Tensor arr = Tensor::empty({5, 7, 3}, DType::U8);
  for (int64_t i = 0; i < arr.numel(); ++i) arr.data<uint8_t>()[i] = static_cast<uint8_t>(i % 251);
  Tensor mu = Tensor::empty({11}, DType::F64);
  for (int i = 0; i < 11; ++i) mu.data<double>()[i] = i * 0.25 - 1.0;
  Tensor sigma = Tensor::empty({3, 4}, DType::F32);
  for (int i = 0; i < 12; ++i) sigma.data<float>()[i] = static_cast<float>(i) / 7.0f;
  Tensor labels = Tensor::empty({3}, DType::I32);
  labels.data<int32_t>()[0] = 3, labels.data<int32_t>()[1] = -1, labels.data<int32_t>()[2] = 7;
  Tensor count = Tensor::empty(Shape{}, DType::I64);
  count.data<int64_t>()[0] = 42;
  return {{"arr_0", arr}, {"mu", mu}, {"sigma", sigma}, {"labels", labels}, {"count", count}};
}

std::string script() {
  return test::source_dir() + "/tests/io/npz_numpy.py";
}

void expect_equal(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void write_file(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

TEST(Npz, WriterOutputLoadsInNumpy) {
  std::string dir = test::make_temp_dir("npz_writer");
  std::string path = dir + "/ours.npz";
  npz::Writer w(path);
  auto arrays = expected_arrays();
  // Stream the first array in pieces, as the sampling job does with its chunks.
  const Tensor& arr = arrays[0].second;
  w.begin_array("arr_0", DType::U8, arr.shape());
  w.append(arr.narrow(0, 0, 2));
  w.append(arr.narrow(0, 2, 3));
  w.end_array();
  for (size_t i = 1; i < arrays.size(); ++i) w.add(arrays[i].first, arrays[i].second);
  w.commit();
  std::string out;
  EXPECT_EQ(test::run_python("'" + script() + "' check '" + path + "'", &out), 0) << out;
}

TEST(Npz, ReadsNumpyStoredAndCompressed) {
  std::string dir = test::make_temp_dir("npz_numpy");
  std::string out;
  ASSERT_EQ(test::run_python("'" + script() + "' write '" + dir + "'", &out), 0) << out;
  for (const char* name : {"np_stored.npz", "np_deflated.npz"}) {
    npz::Reader r(dir + "/" + name);
    EXPECT_EQ(r.arrays().size(), 5u);
    for (const auto& [key, want] : expected_arrays()) expect_equal(r.read(key), want, key);
    expect_equal(r.read_rows("arr_0", 1, 3), expected_arrays()[0].second.narrow(0, 1, 3).clone(),
                 std::string(name) + " rows");
  }
}

TEST(Npz, RoundTripAndAlignedViews) {
  std::string path = test::make_temp_dir("npz_roundtrip") + "/a.npz";
  npz::save(path, expected_arrays());
  npz::Reader r(path);
  for (const auto& [key, want] : expected_arrays()) {
    Tensor got = r.read(key);
    expect_equal(got, want, key);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.raw()) % 64, 0u) << key;  // data 64-byte aligned
  }
  EXPECT_NO_THROW(r.read("sigma", DType::F32, {-1, 4}));
}

TEST(Npz, WrongShapeOrDtypeNamesFileKeyAndShapes) {
  std::string path = test::make_temp_dir("npz_shape") + "/a.npz";
  npz::save(path, expected_arrays());
  npz::Reader r(path);
  try {
    r.read("arr_0", DType::U8, {-1, 256, 256, 3});
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("arr_0"), std::string::npos) << m;
    EXPECT_NE(m.find("(*, 256, 256, 3)"), std::string::npos) << m;
    EXPECT_NE(m.find("(5, 7, 3)"), std::string::npos) << m;
  }
  EXPECT_THROW(r.read("sigma", DType::F64, {3, 4}), Error);
  try {
    r.read("nope");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no array 'nope'"), std::string::npos) << e.what();
  }
}

TEST(Npz, TruncatedAndCorruptFilesAreRefused) {
  std::string dir = test::make_temp_dir("npz_corrupt");
  std::string path = dir + "/a.npz";
  npz::save(path, expected_arrays());
  std::string bytes = read_file(path);
  // Truncated: the central directory is gone.
  write_file(dir + "/trunc.npz", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(npz::Reader(dir + "/trunc.npz"), Error);
  // Not a zip at all.
  write_file(dir + "/text.npz", "hello, this is not an archive at all......");
  try {
    npz::Reader r(dir + "/text.npz");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.npz"), std::string::npos) << e.what();
  }
  // A corrupt .npy header inside a valid archive.
  std::string bad = bytes;
  size_t magic = bad.find("\x93NUMPY");
  ASSERT_NE(magic, std::string::npos);
  bad[magic + 1] = 'X';
  write_file(dir + "/badnpy.npz", bad);
  EXPECT_THROW(npz::Reader(dir + "/badnpy.npz"), Error);
  // An uncommitted writer leaves nothing behind.
  {
    npz::Writer w(dir + "/never.npz");
    w.add("x", expected_arrays()[1].second);
  }
  EXPECT_FALSE(std::ifstream(dir + "/never.npz").good());
  EXPECT_FALSE(std::ifstream(dir + "/never.npz.tmp").good());
}

TEST(Npz, StreamingChecksByteCounts) {
  std::string path = test::make_temp_dir("npz_stream") + "/a.npz";
  npz::Writer w(path);
  w.begin_array("x", DType::F32, {2, 3});
  float six[6] = {};
  EXPECT_THROW(w.append(six, sizeof six + 4), Error);
  w.append(six, 12);
  EXPECT_THROW(w.end_array(), Error);  // 12 of 24 bytes
  EXPECT_THROW(w.commit(), Error);     // array not ended
}

}  // namespace
}  // namespace rae
