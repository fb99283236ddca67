// TensorBoard event files, written without TensorFlow or protobuf: `tensorboard --logdir` over
// the run directories of a cluster shows every run.
//
// Format (what TensorBoard's event reader accepts): a file named events.out.tfevents.* holding
// TFRecords (uint64 LE length, uint32 masked CRC32C of the length bytes, the data, uint32 masked
// CRC32C of the data; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8), each data a serialized
// tensorflow.Event protobuf, encoded here by hand:
//   Event    { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//   } Summary  { repeated Value value = 1; } Value    { string tag = 1; float simple_value = 2;
//   Image image = 4; } Image    { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes
//   encoded_image_string = 4; }
// The first record of a file is the file_version "brain.Event:2" event. Scalars are simple_value
// (TensorBoard's scalar dashboard); images are PNG (or JPEG) bytes encoded by the caller.
//
// Resumed runs: a run that restarts from a checkpoint at step S calls truncate_events(dir, S)
// before writing, so steps logged after that checkpoint by the interrupted attempt are dropped
// and each step appears once (the same rule as metrics.jsonl).
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rae::tensorboard {

// CRC-32C (Castagnoli), and the masked form TFRecord stores.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

// One framed TFRecord holding `data`.
std::string frame_record(const std::string& data);

// Serialized Event protobufs.
std::string encode_file_version_event(double wall_time);
std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag,
                                float value);
// channels: 1 gray, 3 RGB, 4 RGBA (Summary.Image.colorspace).
std::string encode_image_event(double wall_time, int64_t step, const std::string& tag, int height,
                               int width, int channels, const std::string& encoded);

// Steps of the records of an event file (Event.step; -1 for records without one, e.g. the
// file_version record); throws on a corrupt or truncated record, naming `what`.
struct EventRecord {
  int64_t step = -1;
  std::string data;  // the serialized Event
};
std::vector<EventRecord> parse_event_file(const std::string& bytes, const std::string& what);

// The bytes of an event file without the events whose step is > max_step (the file_version
// record and other step-less records are kept). A truncated last record (a writer killed
// mid-append) is dropped.
std::string filter_events(const std::string& bytes, int64_t max_step, const std::string& what);

// The event files of a directory (events.out.tfevents.*), sorted by name.
std::vector<std::string> event_files(const std::string& dir);

class Writer {
 public:
  // Creates dir/events.out.tfevents.<unix time>.<host>.<pid>.<n> and writes the file_version
  // event. Each record is flushed to the OS once written (a reader sees it at once; a killed
  // process loses at most the record it was writing).
  explicit Writer(const std::string& dir);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void add_scalar(const std::string& tag, int64_t step, double value);
  // Every number in a flat JSON object as a scalar `prefix + key` (booleans as 0/1; `skip`
  // keys and non-numbers ignored). Used for the metrics.jsonl line of a step.
  void add_scalars(int64_t step, const nlohmann::json& obj, const std::string& prefix,
                   const std::vector<std::string>& skip = {"step"});
  // An image already encoded as PNG (or JPEG) by the caller.
  void add_image(const std::string& tag, int64_t step, const std::string& encoded, int height,
                 int width, int channels);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& event);
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace rae::tensorboard
