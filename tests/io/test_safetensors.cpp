// safetensors reader/writer: round trips, validation errors (each naming the file), a golden file
// written by the Python safetensors package, and a bounded deterministic fuzz of the parser.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/safetensors.h"
#include "support/util.h"

using namespace rae;
namespace st = rae::safetensors;

namespace {

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<char>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

// A file from a literal JSON header and `data_bytes` bytes of data (values 0, 1, 2, ...).
std::vector<char> raw_file(const std::string& header, size_t data_bytes, uint64_t len_field = 0) {
  uint64_t n = len_field ? len_field : header.size();
  std::vector<char> b(8 + header.size() + data_bytes);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) b[8 + header.size() + i] = static_cast<char>(i);
  return b;
}

// Expects parse() of `bytes` to throw rae::Error whose message contains the buffer's name and
// `needle`.
void expect_parse_error(const std::vector<char>& bytes, const std::string& needle) {
  const std::string name = "case.safetensors";
  try {
    st::parse(bytes.data(), bytes.size(), name);
    ADD_FAILURE() << "parse succeeded, expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// One tensor of every dtype, odd sizes so that alignment matters, plus a scalar and an empty one.
std::map<std::string, Tensor> all_dtype_tensors() {
  std::map<std::string, Tensor> m;
  m["a_f32"] = test::randn({3, 5}, 1);
  m["b_f64"] = test::randn({7}, 2, 1.0, DType::F64);
  m["c_bf16"] = test::randn({3, 1, 3}, 3, 1.0, DType::BF16);
  m["d_f16"] = test::randn({5}, 4, 1.0, DType::F16);
  Tensor i32 = Tensor::empty({2, 3}, DType::I32);
  for (int i = 0; i < 6; ++i) i32.data<int32_t>()[i] = -1000000 * i + 7;
  m["e_i32"] = i32;
  Tensor i64 = Tensor::empty({3}, DType::I64);
  for (int i = 0; i < 3; ++i) i64.data<int64_t>()[i] = (int64_t{1} << 40) * (i - 1);
  m["f_i64"] = i64;
  Tensor u8 = Tensor::empty({13}, DType::U8);
  for (int i = 0; i < 13; ++i) u8.data<uint8_t>()[i] = static_cast<uint8_t>(i * 19);
  m["g_u8"] = u8;
  m["h_scalar"] = Tensor::full({}, 3.25);
  m["i_empty"] = Tensor::zeros({0, 4});
  m["j_8d"] = test::randn({1, 2, 1, 2, 1, 2, 1, 2}, 5);
  return m;
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  std::string path = test::make_temp_dir("st") + "/all.safetensors";
  auto tensors = all_dtype_tensors();
  st::save(path, tensors);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  st::File f = st::load(path);
  EXPECT_EQ(f.path, path);
  EXPECT_EQ(f.names.size(), tensors.size());
  EXPECT_TRUE(f.metadata.empty());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(f.contains(name)) << name;
    EXPECT_TRUE(same_bytes(f.get(name), t)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.get(name).raw()) % dtype_size(t.dtype()), 0u) << name;
  }
  // The same bytes through the in-memory parser.
  std::vector<char> bytes = read_bytes(path);
  st::File g = st::parse(bytes.data(), bytes.size(), "mem");
  EXPECT_EQ(g.names, f.names);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(same_bytes(g.get(name), t)) << name;
}

TEST(Safetensors, MetadataAndOverwrite) {
  std::string path = test::make_temp_dir("st") + "/meta.safetensors";
  std::map<std::string, std::string> meta = {{"step", "1200"},
                                             {"config", "{\"depth\": 12}"},
                                             {"empty", ""},
                                             {"utf8", "\xc3\xa9t\xc3\xa9"}};
  st::save(path, {{"w", Tensor::full({2}, 1.0)}}, meta);
  EXPECT_EQ(st::load(path).metadata, meta);
  // Overwriting replaces the file as a whole.
  st::save(path, {{"v", Tensor::full({3}, 2.0)}});
  st::File f = st::load(path);
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_EQ(f.names, std::vector<std::string>{"v"});
  EXPECT_EQ(f.get("v").item(2), 2.0);
}

TEST(Safetensors, SaveCopiesNonContiguousViews) {
  std::string path = test::make_temp_dir("st") + "/views.safetensors";
  Tensor base = test::randn({4, 6}, 9);
  Tensor view = base.narrow(1, 2, 3);  // (4, 3), not contiguous
  st::save(path, {{"v", view}});
  Tensor back = st::load(path).get("v", DType::F32, {4, 3});
  EXPECT_EQ(test::max_abs_diff(back, view.clone()), 0.0);
}

TEST(Safetensors, LoadedTensorsOutliveTheFileObjectAndAreWritable) {
  std::string path = test::make_temp_dir("st") + "/alive.safetensors";
  st::save(path, {{"x", Tensor::full({1000}, 4.0)}});
  Tensor x;
  { x = st::load(path).get("x"); }
  EXPECT_EQ(x.item(999), 4.0);
  x.data<float>()[0] = -1.f;  // private mapping: writes stay in memory
  EXPECT_EQ(st::load(path).get("x").item(0), 4.0);
}

TEST(Safetensors, SaveRejectsBadInput) {
  std::string dir = test::make_temp_dir("st");
  EXPECT_THROW(st::save(dir + "/a.safetensors", {{"", Tensor::zeros({1})}}), Error);
  EXPECT_THROW(st::save(dir + "/a.safetensors", {{"__metadata__", Tensor::zeros({1})}}), Error);
  EXPECT_THROW(st::save(dir + "/a.safetensors", {{"x", Tensor()}}), Error);
  EXPECT_THROW(st::save(dir + "/a.safetensors", {{"x", Tensor::zeros({1})}}, {{"k", "\xff"}}),
               Error);  // not UTF-8
  try {
    st::save(dir + "/no/such/dir/a.safetensors", {{"x", Tensor::zeros({1})}});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/a.safetensors"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.safetensors.tmp"));
}

TEST(Safetensors, MissingTensorAndMismatchNameTheFile) {
  std::string path = test::make_temp_dir("st") + "/names.safetensors";
  st::save(path, {{"weight", Tensor::zeros({2, 3})}});
  st::File f = st::load(path);
  try {
    f.get("bias");
    ADD_FAILURE();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weight"), std::string::npos) << msg;  // lists what is there
  }
  try {
    f.get("weight", DType::F32, {3, 2});
    ADD_FAILURE();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("(2, 3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(3, 2)"), std::string::npos) << msg;
  }
  EXPECT_THROW(f.get("weight", DType::F64, {2, 3}), Error);
  EXPECT_NO_THROW(f.get("weight", DType::F32, {2, 3}));
}

TEST(Safetensors, LoadErrorsNameTheFile) {
  std::string dir = test::make_temp_dir("st");
  for (const std::string& path : {dir + "/missing.safetensors", dir}) {
    try {
      st::load(path);
      ADD_FAILURE() << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Safetensors, TruncatedFile) {
  std::string dir = test::make_temp_dir("st");
  std::string path = dir + "/full.safetensors";
  st::save(path, all_dtype_tensors(), {{"k", "v"}});
  std::vector<char> full = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, full.data(), 8);
  // Cut in the length field, in the JSON, at the data start, inside the data, one byte short.
  for (size_t cut : {size_t{0}, size_t{5}, size_t{8}, size_t{8 + n / 2}, size_t{8 + n},
                     size_t{8 + n + 9}, full.size() - 1}) {
    std::vector<char> part(full.begin(), full.begin() + cut);
    std::string p = dir + "/cut" + std::to_string(cut) + ".safetensors";
    write_bytes(p, part);
    try {
      st::load(p);
      ADD_FAILURE() << "cut at " << cut;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << msg;
      // Cuts inside the JSON are reported as a truncated header or as invalid JSON.
      bool says =
          msg.find("truncated") != std::string::npos || msg.find("JSON") != std::string::npos;
      EXPECT_TRUE(says) << "cut at " << cut << ": " << msg;
    }
  }
  // Trailing garbage is an error too: the tensors must cover the data exactly.
  std::vector<char> longer = full;
  longer.push_back(0);
  expect_parse_error(longer, "size mismatch");
}

TEST(Safetensors, CorruptHeader) {
  const std::string good = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_NO_THROW(st::parse(raw_file(good, 8).data(), 16 + good.size(), "ok"));
  expect_parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8),
                     "JSON");
  expect_parse_error(raw_file(R"([1,2])", 0), "'{'");
  expect_parse_error(raw_file(R"({"x":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", 8),
                     "unknown dtype");
  expect_parse_error(raw_file(R"({"x":{"dtype":"I16","shape":[4],"data_offsets":[0,8]}})", 8),
                     "not supported");
  expect_parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                     "non-negative");
  expect_parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8),
                     "shape");
  expect_parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"y":1}})", 8),
                     "unexpected key");
  expect_parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[2]}})", 0), "data_offsets");
  expect_parse_error(raw_file(R"({"x":[1]})", 0), "object");
  expect_parse_error(raw_file(R"({"__metadata__":{"k":1}})", 0), "__metadata__");
  expect_parse_error(raw_file(R"({"__metadata__":[]})", 0), "__metadata__");
  expect_parse_error(raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              8),
                     "duplicate");
  expect_parse_error(
      raw_file(R"({"x":{"dtype":"F32","shape":[[[[[1]]]]],"data_offsets":[0,4]}})", 4), "deep");
  expect_parse_error(
      raw_file(R"({"x":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", 1),
      "dims");
  expect_parse_error(
      raw_file(R"({"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
      "too large");
  // A zero dim does not excuse an overflowing product of the others (numel() would overflow).
  expect_parse_error(
      raw_file(R"({"x":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0),
      "too large");
  expect_parse_error(
      raw_file(R"({"x":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})", 8),
      "too large");
  std::string bad_utf8 = "{\"x\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  expect_parse_error(raw_file(bad_utf8, 1), "JSON");
}

TEST(Safetensors, WrongOffsets) {
  auto one = [](const std::string& offs) {
    return R"({"x":{"dtype":"F32","shape":[2],"data_offsets":)" + offs + "}}";
  };
  expect_parse_error(raw_file(one("[0,4]"), 8), "needs 8");  // span vs shape
  expect_parse_error(raw_file(one("[8,0]"), 8), "end before begin");
  expect_parse_error(raw_file(one("[4,12]"), 12), "hole");          // data does not start at 0
  expect_parse_error(raw_file(one("[0,8]"), 4), "truncated");       // data shorter than offsets
  expect_parse_error(raw_file(one("[0,8]"), 12), "size mismatch");  // bytes left over
  expect_parse_error(raw_file(one("[0]"), 8), "data_offsets");
  expect_parse_error(raw_file(one("[18446744073709551615,7]"), 8), "end before begin");
  const std::string two_overlap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expect_parse_error(raw_file(two_overlap, 12), "overlap");
  const std::string two_hole = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
  expect_parse_error(raw_file(two_hole, 20), "hole");
  // Offsets listed out of order in the JSON are fine as long as they tile the data.
  const std::string two_swapped = R"({"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                                  R"("a":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})";
  std::vector<char> ok = raw_file(two_swapped, 11);
  st::File f = st::parse(ok.data(), ok.size(), "swapped");
  EXPECT_EQ(f.names, (std::vector<std::string>{"b", "a"}));
  // "a" starts at a misaligned address, so it is copied; its bytes must still match.
  Tensor a = f.get("a", DType::F32, {2});
  uint32_t first;
  std::memcpy(&first, a.raw(), 4);
  EXPECT_EQ(first, 0x06050403u);
}

TEST(Safetensors, HugeHeaderLength) {
  std::vector<char> b(16, ' ');
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(0xff);
  expect_parse_error(b, "exceeds the limit");
  // Just over the limit, and a legal length that points past the end of the file.
  expect_parse_error(raw_file("{}", 0, st::kMaxHeaderBytes + 1), "exceeds the limit");
  expect_parse_error(raw_file("{}", 0, 1000), "truncated");
  // An empty header object is a valid file with no tensors.
  std::vector<char> empty = raw_file("{}", 0);
  EXPECT_TRUE(st::parse(empty.data(), empty.size(), "e").names.empty());
}

// Written by tests/reference/make_io_goldens.py with the Python safetensors package (which orders
// tensors by alignment, then name, and pads the header with spaces).
TEST(Safetensors, ReadsPythonSafetensorsGolden) {
  st::File f = st::load(test::golden_path("io/python_safetensors.safetensors"));
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("producer"), "make_io_goldens.py");
  EXPECT_EQ(f.metadata.at("note"), "unicode \xc3\xa9");
  EXPECT_EQ(f.names.size(), 9u);
  auto check_float = [&](const char* name, DType dt, const Shape& shape) {
    Tensor t = f.get(name, dt, shape);
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.item(i), i * 0.5 - 3) << name << " " << i;
  };
  check_float("f32", DType::F32, {2, 3, 4});
  check_float("f64", DType::F64, {6});
  check_float("bf16", DType::BF16, {2, 5});
  check_float("f16", DType::F16, {7, 1});
  Tensor i32 = f.get("i32", DType::I32, {5});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(i32.data<int32_t>()[i], i * 1000 - 5000);
  Tensor i64 = f.get("i64", DType::I64, {3});
  EXPECT_EQ(i64.data<int64_t>()[0], -5000);
  EXPECT_EQ(i64.data<int64_t>()[2], int64_t{1} << 40);
  Tensor u8 = f.get("u8", DType::U8, {11});
  for (int i = 0; i < 11; ++i) EXPECT_EQ(u8.data<uint8_t>()[i], static_cast<uint8_t>(i * 23));
  EXPECT_EQ(f.get("scalar", DType::F32, {}).item(), 2.5);
  EXPECT_EQ(f.get("empty", DType::F32, {0, 3}).numel(), 0);
}

// Bounded fuzz: random mutations of valid files must either parse or throw rae::Error (never crash,
// hang or throw anything else). Deterministic (Philox, fixed seed); 20k cases take ~1 s.
TEST(Safetensors, BoundedFuzzNeverCrashes) {
  std::vector<std::vector<char>> seeds;
  {
    std::string dir = test::make_temp_dir("st");
    st::save(dir + "/a.safetensors", all_dtype_tensors(), {{"k", "v"}});
    seeds.push_back(read_bytes(dir + "/a.safetensors"));
    st::save(dir + "/b.safetensors", {{"w", test::randn({3}, 1)}, {"b", Tensor::zeros({0})}});
    seeds.push_back(read_bytes(dir + "/b.safetensors"));
    seeds.push_back(read_bytes(test::golden_path("io/python_safetensors.safetensors")));
  }
  const char* tokens[] = {"{",
                          "}",
                          "[",
                          "]",
                          ",",
                          ":",
                          "\"",
                          "0",
                          "-1",
                          "1e400",
                          "18446744073709551616",
                          "\"F32\"",
                          "\"U8\"",
                          "\"shape\"",
                          "\"data_offsets\"",
                          "null",
                          "\\u0000",
                          "\"__metadata__\"",
                          "4294967295",
                          " "};
  rng::Key key{20261126, rng::Purpose::Test, 77, 0};
  uint64_t draw = 0;
  auto rand_below = [&](uint64_t n) {
    return static_cast<uint64_t>(rng::uniform_at(key, draw++) * static_cast<float>(n)) % n;
  };
  int parsed = 0, rejected = 0;
  const int iterations = 20000;
  for (int it = 0; it < iterations; ++it) {
    std::vector<char> b = seeds[rand_below(seeds.size())];
    int n_mut = 1 + static_cast<int>(rand_below(4));
    for (int m = 0; m < n_mut && !b.empty(); ++m) {
      uint64_t hdr = 0;
      if (b.size() >= 8) std::memcpy(&hdr, b.data(), 8);
      // Most mutations target the header, where the parser's logic is.
      size_t span = std::min<size_t>(b.size(), 8 + std::min<uint64_t>(hdr, b.size()));
      size_t pos = rand_below(rand_below(4) == 0 ? b.size() : span);
      switch (rand_below(7)) {
        case 0:
          b[pos] = static_cast<char>(b[pos] ^ (1 << rand_below(8)));
          break;
        case 1:
          b[pos] = static_cast<char>(rand_below(256));
          break;
        case 2:
          b.resize(rand_below(b.size() + 1));
          break;
        case 3:
          b.erase(b.begin() + pos, b.begin() + std::min(b.size(), pos + 1 + rand_below(8)));
          break;
        case 4: {
          std::string tok = tokens[rand_below(sizeof(tokens) / sizeof(tokens[0]))];
          b.insert(b.begin() + pos, tok.begin(), tok.end());
          break;
        }
        case 5:  // change a digit: shapes and offsets
          if (std::isdigit(static_cast<unsigned char>(b[pos])))
            b[pos] = static_cast<char>('0' + rand_below(10));
          break;
        case 6: {  // rewrite the header length field
          uint64_t v = rand_below(3) == 0 ? hdr + rand_below(16) - 8 : rand_below(1ull << 40);
          if (b.size() >= 8) std::memcpy(b.data(), &v, 8);
          break;
        }
      }
    }
    try {
      st::File f = st::parse(b.data(), b.size(), "fuzz");
      // Touch every tensor's bytes so a bad view would be caught (and by ASan in sanitizer builds).
      uint64_t sum = 0;
      for (const auto& name : f.names) {
        Tensor t = f.get(name);
        const unsigned char* p = static_cast<const unsigned char*>(t.raw());
        for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
      }
      (void)sum;
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  std::printf("bounded fuzz: %d parsed, %d rejected\n", parsed, rejected);
  EXPECT_EQ(parsed + rejected, iterations);
  EXPECT_GT(parsed, 0);  // some mutations leave the file valid (e.g. flipped data bytes)
  EXPECT_GT(rejected, iterations / 2);
}
