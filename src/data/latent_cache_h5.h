// Thin RAII layer over the HDF5 C API for the latent cache. Every failing call becomes a
// rae::Error that names the file and the object (dataset or attribute) and carries HDF5's own
// innermost message; HDF5's automatic printing of error stacks to stderr is switched off.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rae::h5 {

// Turns off HDF5's automatic error printing (idempotent; called by every entry point below).
void quiet_errors();

// The API-level and innermost messages of the current thread's HDF5 error stack ("" when empty);
// clears it.
std::string last_error_message();

// Throws rae::Error "HDF5: <what> (file '<file>'[, object '<object>']): <hdf5 message>".
[[noreturn]] void fail(const std::string& what, const std::string& file,
                       const std::string& object = "");

// Owns one hid_t and closes it with the matching H5?close.
class Handle {
 public:
  enum class Kind { File, Dataset, Dataspace, Datatype, Attribute, Plist, Group };
  Handle() = default;
  Handle(hid_t id, Kind kind) : id_(id), kind_(kind) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), kind_(o.kind_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Closes now and reports failure (files: flushing may fail on a full disk).
  void close_checked(const std::string& file, const std::string& object = "");

 private:
  hid_t id_ = H5I_INVALID_HID;
  Kind kind_ = Kind::File;
};

// The 2-byte IEEE half-precision float type (sign 1, exponent 5, mantissa 10, bias 15). HDF5
// 1.10 has no predefined half type, but a float type with these fields is a standard HDF5 float
// and h5py reads it as numpy.float16. Caller owns the returned handle.
Handle make_f16_type();

// Attribute helpers on any object (file root, dataset). Errors name file and object.
void write_string_attr(hid_t obj, const std::string& name, const std::string& value,
                       const std::string& file, const std::string& object);
void write_int_attr(hid_t obj, const std::string& name, int64_t value, const std::string& file,
                    const std::string& object);
bool has_attr(hid_t obj, const std::string& name);
std::string read_string_attr(hid_t obj, const std::string& name, const std::string& file,
                             const std::string& object);
int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& file,
                      const std::string& object);

// Dimensions of a dataset's dataspace.
std::vector<hsize_t> dataset_dims(hid_t dset, const std::string& file, const std::string& object);

}  // namespace rae::h5
