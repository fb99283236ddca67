// TensorBoard event files (io/tensorboard.h): CRC-32C, TFRecord framing, the hand-encoded Event
// protobuf, filtering a resumed run's events. The files are also read back with the tensorboard
// package's reader (tests/io/check_tensorboard.py, ctest io_tensorboard_read_back).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "io/tensorboard.h"
#include "support/util.h"

using namespace rae;
namespace tb = rae::tensorboard;

namespace {

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// The check value of CRC-32C (RFC 3720, and every CRC catalogue) and TFRecord's mask of it.
TEST(TensorBoard, Crc32cKnownValues) {
  EXPECT_EQ(tb::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(tb::crc32c("", 0), 0u);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(tb::masked_crc32c("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

// A scalar event's bytes, protobuf field by field (wall_time 1.5, step 3, tag "a", 0.25f).
TEST(TensorBoard, ScalarEventEncoding) {
  const std::string ev = tb::encode_scalar_event(1.5, 3, "a", 0.25f);
  const std::string want = std::string("\x09\x00\x00\x00\x00\x00\x00\xf8\x3f", 9) +  // wall_time
                           std::string("\x10\x03", 2) +                              // step
                           std::string(
                               "\x2a\x0a\x0a\x08\x0a\x01"
                               "a"
                               "\x15\x00\x00\x80\x3e",
                               12);
  EXPECT_EQ(ev, want);
  // Framing: length, masked CRC of the length, data, masked CRC of the data.
  const std::string rec = tb::frame_record(ev);
  ASSERT_EQ(rec.size(), ev.size() + 16);
  auto recs = tb::parse_event_file(rec, "rec");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].step, 3);
  EXPECT_EQ(recs[0].data, ev);
}

TEST(TensorBoard, CorruptRecordIsNamed) {
  std::string rec = tb::frame_record(tb::encode_scalar_event(0, 7, "loss", 1.0f));
  rec[rec.size() - 6] ^= 1;  // a data byte
  try {
    tb::parse_event_file(rec, "f.tfevents");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("f.tfevents: bad data checksum"), std::string::npos)
        << e.what();
  }
}

// A resumed run keeps events up to its checkpoint's step; a half-written last record goes.
TEST(TensorBoard, FilterKeepsStepsUpToTheCheckpoint) {
  std::string bytes = tb::frame_record(tb::encode_file_version_event(0));
  for (int s = 1; s <= 6; ++s) bytes += tb::frame_record(tb::encode_scalar_event(0, s, "l", s));
  const std::string partial = tb::frame_record(tb::encode_scalar_event(0, 7, "l", 7));
  bytes += partial.substr(0, partial.size() - 3);
  auto kept = tb::parse_event_file(tb::filter_events(bytes, 4, "f"), "f");
  ASSERT_EQ(kept.size(), 5u);
  EXPECT_EQ(kept[0].step, -1);  // file_version has no step
  for (int s = 1; s <= 4; ++s) EXPECT_EQ(kept[s].step, s);
}

TEST(TensorBoard, WriterFileStartsWithVersionAndFlushes) {
  const std::string dir = test::make_temp_dir("tensorboard_writer");
  tb::Writer w(dir);
  w.add_scalar("train/loss", 1, 0.5);
  w.add_scalars(2, {{"step", 2}, {"loss", 0.25}, {"skipped", true}, {"name", "x"}}, "train/");
  // Readable while the writer is open: every record is flushed.
  auto recs = tb::parse_event_file(slurp(w.path()), w.path());
  ASSERT_EQ(recs.size(), 4u);  // version, loss@1, loss@2, skipped@2
  EXPECT_EQ(recs[1].step, 1);
  EXPECT_EQ(recs[3].step, 2);
  EXPECT_EQ(tb::event_files(dir), std::vector<std::string>{w.path()});
  EXPECT_THROW(w.add_image("img", 1, "png", 2, 2, 2), std::exception);  // 2 channels
}
