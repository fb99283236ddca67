#include "data/latent_cache_h5.h"

#include <mutex>

#include "core/error.h"

namespace rae::h5 {

void quiet_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
  // The automatic printer is per thread in a thread-safe HDF5 build: switch it off here too.
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

namespace {
herr_t walk_collect(unsigned, const H5E_error2_t* err, void* out) {
  // Walking downward: from the API call to the innermost function (the original cause).
  if (err->desc && *err->desc) static_cast<std::vector<std::string>*>(out)->push_back(err->desc);
  return 0;
}
}  // namespace

std::string last_error_message() {
  std::vector<std::string> descs;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_collect, &descs);
  H5Eclear2(H5E_DEFAULT);
  if (descs.empty()) return "";
  // The API-level message, then the innermost cause ("unable to open file: file signature not
  // found").
  return descs.size() == 1 || descs.front() == descs.back() ? descs.front()
                                                            : descs.front() + ": " + descs.back();
}

void fail(const std::string& what, const std::string& file, const std::string& object) {
  std::string cause = last_error_message();
  RAE_THROW("HDF5: ", what, " (file '", file, "'", object.empty() ? "" : ", object '", object,
            object.empty() ? "" : "'", ")", cause.empty() ? "" : ": ", cause);
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    kind_ = o.kind_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

namespace {
herr_t close_id(hid_t id, Handle::Kind kind) {
  switch (kind) {
    case Handle::Kind::File:
      return H5Fclose(id);
    case Handle::Kind::Dataset:
      return H5Dclose(id);
    case Handle::Kind::Dataspace:
      return H5Sclose(id);
    case Handle::Kind::Datatype:
      return H5Tclose(id);
    case Handle::Kind::Attribute:
      return H5Aclose(id);
    case Handle::Kind::Plist:
      return H5Pclose(id);
    case Handle::Kind::Group:
      return H5Gclose(id);
  }
  return -1;
}
}  // namespace

void Handle::reset() {
  if (id_ >= 0) {
    close_id(id_, kind_);
    H5Eclear2(H5E_DEFAULT);
  }
  id_ = H5I_INVALID_HID;
}

void Handle::close_checked(const std::string& file, const std::string& object) {
  if (id_ < 0) return;
  hid_t id = id_;
  id_ = H5I_INVALID_HID;
  if (close_id(id, kind_) < 0) fail("close failed", file, object);
}

Handle make_f16_type() {
  quiet_errors();
  Handle t(H5Tcopy(H5T_IEEE_F32LE), Handle::Kind::Datatype);
  if (!t.valid()) fail("cannot create the f16 type", "-");
  // Fields first (they must fit the current 4-byte size), then shrink to 2 bytes.
  if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 ||
      H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0)
    fail("cannot define the f16 type", "-");
  return t;
}

void write_string_attr(hid_t obj, const std::string& name, const std::string& value,
                       const std::string& file, const std::string& object) {
  Handle type(H5Tcopy(H5T_C_S1), Handle::Kind::Datatype);
  // Fixed-length ASCII string: h5py returns it as bytes -> decoded by .decode() or np.bytes_.
  H5Tset_size(type, value.empty() ? 1 : value.size());
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), Handle::Kind::Dataspace);
  Handle attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
              Handle::Kind::Attribute);
  if (!attr.valid()) fail("cannot create attribute '" + name + "'", file, object);
  if (H5Awrite(attr, type, value.c_str()) < 0)
    fail("cannot write attribute '" + name + "'", file, object);
}

void write_int_attr(hid_t obj, const std::string& name, int64_t value, const std::string& file,
                    const std::string& object) {
  Handle space(H5Screate(H5S_SCALAR), Handle::Kind::Dataspace);
  Handle attr(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
              Handle::Kind::Attribute);
  if (!attr.valid()) fail("cannot create attribute '" + name + "'", file, object);
  if (H5Awrite(attr, H5T_NATIVE_INT64, &value) < 0)
    fail("cannot write attribute '" + name + "'", file, object);
}

bool has_attr(hid_t obj, const std::string& name) {
  htri_t r = H5Aexists(obj, name.c_str());
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

std::string read_string_attr(hid_t obj, const std::string& name, const std::string& file,
                             const std::string& object) {
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), Handle::Kind::Attribute);
  if (!attr.valid()) fail("missing attribute '" + name + "'", file, object);
  Handle ftype(H5Aget_type(attr), Handle::Kind::Datatype);
  if (H5Tget_class(ftype) != H5T_STRING)
    RAE_THROW("HDF5: attribute '", name, "' is not a string (file '", file, "', object '", object,
              "')");
  std::string out;
  if (H5Tis_variable_str(ftype) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), Handle::Kind::Datatype);
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    char* s = nullptr;
    if (H5Aread(attr, mtype, &s) < 0) fail("cannot read attribute '" + name + "'", file, object);
    if (s) out = s;
    H5free_memory(s);
  } else {
    size_t n = H5Tget_size(ftype);
    std::vector<char> buf(n + 1, '\0');
    Handle mtype(H5Tcopy(ftype), Handle::Kind::Datatype);
    if (H5Aread(attr, mtype, buf.data()) < 0)
      fail("cannot read attribute '" + name + "'", file, object);
    out.assign(buf.data());  // stops at the first NUL (null-padded or null-terminated)
  }
  return out;
}

int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& file,
                      const std::string& object) {
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), Handle::Kind::Attribute);
  if (!attr.valid()) fail("missing attribute '" + name + "'", file, object);
  Handle ftype(H5Aget_type(attr), Handle::Kind::Datatype);
  if (H5Tget_class(ftype) != H5T_INTEGER)
    RAE_THROW("HDF5: attribute '", name, "' is not an integer (file '", file, "', object '", object,
              "')");
  int64_t v = 0;
  if (H5Aread(attr, H5T_NATIVE_INT64, &v) < 0)
    fail("cannot read attribute '" + name + "'", file, object);
  return v;
}

std::vector<hsize_t> dataset_dims(hid_t dset, const std::string& file, const std::string& object) {
  Handle space(H5Dget_space(dset), Handle::Kind::Dataspace);
  if (!space.valid()) fail("cannot get dataspace", file, object);
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0) fail("cannot get rank", file, object);
  std::vector<hsize_t> dims(nd);
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

}  // namespace rae::h5
