#include "core/h5.h"

#include <H5PLpublic.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace ddpm::h5 {
namespace {


DType classify(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? DType::kFloat32 : size == 8 ? DType::kFloat64 : DType::kOther;
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    if (size == 1 && !is_signed) return DType::kUInt8;
    if (size == 4 && is_signed) return DType::kInt32;
    if (size == 8 && is_signed) return DType::kInt64;
  }
  return DType::kOther;
}

std::vector<std::string> split_path(const std::string& name) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : name) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  return parts;
}

// Links and attributes in the object header, never in dense storage (h5.h says why).
// 65535 is the most HDF5 allows for both; the minimum dense count must be below it.
void keep_metadata_compact(hid_t group_create_plist) {
  H5Pset_link_phase_change(group_create_plist, 65535, 65534);
  H5Pset_attr_phase_change(group_create_plist, 65535, 65534);
}

}  // namespace

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex m;
  return m;
}

Lock::Lock() : guard_(library_mutex()) {
  thread_local bool quiet = false;
  if (!quiet) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    quiet = true;
  }
}

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    Lock lock;
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    H5PLset_loading_state(0);
  });
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) {
    Lock lock;
    closer_(id_);
  }
  id_ = -1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kUInt8: return "uint8";
    default: return "an unsupported type";
  }
}

int64_t DatasetInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void File::fail(const std::string& what) const { input_error(path_, ": ", what); }

File File::open_read(const std::string& path) {
  init();
  Lock lock;
  File f;
  f.path_ = path;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) f.fail("no such file");
  if (!S_ISREG(st.st_mode)) f.fail("not a regular file");
  if (H5Fis_hdf5(path.c_str()) <= 0) f.fail("not an HDF5 file");
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0) f.fail("cannot open the HDF5 file (truncated or corrupt)");
  f.file_ = Handle(id, H5Fclose);
  return f;
}

File File::open_read_checksummed(const std::string& path, const std::string& remedy) {
  // The signature at offset 0 (ddpm writes no user block), then the superblock version:
  // 2 and 3 carry a checksum and belong to the format whose metadata is all checksummed.
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  unsigned char head[9] = {0};
  if (FILE* in = std::fopen(path.c_str(), "rb")) {
    const size_t got = std::fread(head, 1, sizeof head, in);
    std::fclose(in);
    if (got == sizeof head && std::memcmp(head, kSignature, 8) == 0 && head[8] < 2) {
      input_error(path, ": HDF5 superblock version ", static_cast<int>(head[8]),
                  " has no metadata checksums, and ddpm writes this file in the 1.10 format; ", remedy);
    }
    if (got == sizeof head && std::memcmp(head, kSignature, 8) != 0 && H5Fis_hdf5(path.c_str()) > 0) {
      input_error(path, ": an HDF5 file with a user block, which ddpm does not write; ", remedy);
    }
  }
  File f = open_read(path);
  f.compact_only_ = true;
  f.remedy_ = remedy;
  Lock lock;
  Handle root(H5Gopen2(f.file_.get(), "/", H5P_DEFAULT), H5Gclose);
  H5G_info_t gi;
  if (!root.valid() || H5Gget_info(root.get(), &gi) < 0) f.fail("cannot read the root group");
  f.require_compact(root.get(), "/", gi);
  return f;
}

// Dense links or attributes live in fractal-heap blocks that nothing checksums (h5.h);
// ddpm's writers never make them, so such a file is refused before HDF5 decodes them.
void File::require_compact(hid_t group, const std::string& name, const H5G_info_t& info) const {
  H5O_info_t oi;
  if (H5Oget_info2(group, &oi, H5O_INFO_META_SIZE) < 0) fail(cat("cannot read the group '", name, "'"));
  if (info.storage_type == H5G_STORAGE_TYPE_DENSE || oi.meta_size.attr.heap_size > 0) {
    fail(cat("the group '", name, "' keeps its links or attributes in HDF5's dense storage, which has no checksums ",
             "and which ddpm does not write; ", remedy_));
  }
}

File File::create(const std::string& path) { return create_with(path, false); }

File File::create_checksummed(const std::string& path) { return create_with(path, true); }

File File::create_with(const std::string& path, bool checksummed) {
  init();
  Lock lock;
  File f;
  f.path_ = path;
  f.writable_ = true;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  if (checksummed) H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  keep_metadata_compact(fcpl.get());
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (id < 0) input_error(path, ": cannot create the file (directory missing or not writable?)");
  f.file_ = Handle(id, H5Fclose);
  return f;
}

void File::close() {
  Lock lock;
  if (file_.valid() && writable_ && H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) {
    fail("cannot flush the file (disk full?)");
  }
  file_.reset();
}

void File::check_hard_link(const std::string& name) const {
  std::string prefix;
  for (const std::string& part : split_path(name)) {
    prefix += "/" + part;
    htri_t exists = H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT);
    if (exists <= 0) fail(cat("'", prefix.substr(1), "' is missing"));
    H5L_info_t li;
    if (H5Lget_info(file_.get(), prefix.c_str(), &li, H5P_DEFAULT) < 0) fail(cat("cannot read the link '", prefix.substr(1), "'"));
    if (li.type != H5L_TYPE_HARD) fail(cat("'", prefix.substr(1), "' is a soft or external link, which is refused"));
  }
}

namespace {
// The type of the object at `name`, following only links that exist (H5Oget_info on a
// missing path would fail noisily); -1 when there is none.
int object_type(hid_t file, const std::string& name) {
  std::string prefix;
  for (const std::string& part : split_path(name)) {
    prefix += "/" + part;
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return -1;
  }
  H5O_info_t oi;
  if (H5Oget_info_by_name(file, name.c_str(), &oi, H5P_DEFAULT) < 0) return -1;
  return static_cast<int>(oi.type);
}
}  // namespace

bool File::has_group(const std::string& name) const {
  Lock lock;
  return object_type(file_.get(), name) == H5O_TYPE_GROUP;
}

bool File::has_dataset(const std::string& name) const {
  Lock lock;
  return object_type(file_.get(), name) == H5O_TYPE_DATASET;
}

std::vector<std::string> File::list(const std::string& group) const {
  Lock lock;
  check_hard_link(group);
  Handle g(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(cat("'", group, "' is not a group"));
  H5G_info_t gi;
  if (H5Gget_info(g.get(), &gi) < 0) fail(cat("cannot list the group '", group, "'"));
  if (compact_only_) require_compact(g.get(), group, gi);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < gi.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) fail(cat("cannot list the group '", group, "'"));
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    names.push_back(name);
  }
  return names;
}

Handle File::open_dataset(const std::string& name, bool chunk_cache) const {
  Lock lock;
  check_hard_link(name);
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  if (!chunk_cache) H5Pset_chunk_cache(dapl.get(), 0, 0, H5D_CHUNK_CACHE_W0_DEFAULT);
  Handle ds(H5Dopen2(file_.get(), name.c_str(), dapl.get()), H5Dclose);
  if (!ds.valid()) fail(cat("'", name, "' is not a readable dataset"));
  Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  if (!dcpl.valid()) fail(cat("cannot read the storage properties of '", name, "'"));
  if (H5Pget_external_count(dcpl.get()) > 0) fail(cat("'", name, "' uses external storage, which is refused"));
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED && layout != H5D_COMPACT) {
    fail(cat("'", name, "' has an unsupported storage layout (virtual datasets are refused)"));
  }
  return ds;
}

DatasetInfo File::info(const std::string& name) const {
  Lock lock;
  Handle ds = open_dataset(name);
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!type.valid() || !space.valid()) fail(cat("cannot read the type or shape of '", name, "'"));
  DatasetInfo di;
  di.dtype = classify(type.get());
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) fail(cat("'", name, "' has an unsupported rank"));
  hsize_t dims[8] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  for (int i = 0; i < rank; ++i) {
    if (dims[i] > (hsize_t{1} << 40)) fail(cat("'", name, "' has an implausible size"));
    di.shape.push_back(static_cast<int64_t>(dims[i]));
  }
  return di;
}

void File::read_raw(const std::string& name, hid_t mem_type, void* out, int64_t n, DType want) const {
  Lock lock;
  const DatasetInfo di = info(name);
  const bool int_ok = (want == DType::kInt64) &&
                      (di.dtype == DType::kInt32 || di.dtype == DType::kInt64 || di.dtype == DType::kUInt8);
  if (di.dtype != want && !int_ok) {
    fail(cat("'", name, "' has dtype ", dtype_name(di.dtype), ", expected ", dtype_name(want)));
  }
  if (di.numel() != n) fail(cat("'", name, "' has ", di.numel(), " elements, expected ", n));
  Handle ds = open_dataset(name);
  if (n > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    fail(cat("cannot read '", name, "' (file truncated or corrupt)"));
  }
}

void File::read_f32(const std::string& name, float* out, int64_t n) const {
  read_raw(name, H5T_NATIVE_FLOAT, out, n, DType::kFloat32);
}
void File::read_f64(const std::string& name, double* out, int64_t n) const {
  read_raw(name, H5T_NATIVE_DOUBLE, out, n, DType::kFloat64);
}
void File::read_i64(const std::string& name, int64_t* out, int64_t n) const {
  read_raw(name, H5T_NATIVE_INT64, out, n, DType::kInt64);
}
void File::read_u8(const std::string& name, uint8_t* out, int64_t n) const {
  read_raw(name, H5T_NATIVE_UINT8, out, n, DType::kUInt8);
}

void File::create_group(const std::string& name) {
  Lock lock;
  Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  keep_metadata_compact(gcpl.get());
  Handle g(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(cat("cannot create the group '", name, "'"));
}

namespace {
void write_dataset(const File& f, const std::string& name, hid_t file_type, hid_t mem_type, const void* data,
                   const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle ds(H5Dcreate2(f.id(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (!ds.valid()) f.fail(cat("cannot create the dataset '", name, "'"));
  if (H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    f.fail(cat("cannot write the dataset '", name, "' (disk full?)"));
  }
}
}  // namespace

void File::write_f32(const std::string& name, const float* data, const std::vector<int64_t>& shape) {
  Lock lock;
  write_dataset(*this, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, shape);
}
void File::write_f64(const std::string& name, const double* data, const std::vector<int64_t>& shape) {
  Lock lock;
  write_dataset(*this, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, shape);
}
void File::write_i64(const std::string& name, const int64_t* data, const std::vector<int64_t>& shape) {
  Lock lock;
  write_dataset(*this, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, shape);
}

bool File::has_attr(const std::string& obj, const std::string& name) const {
  Lock lock;
  return H5Aexists_by_name(file_.get(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

namespace {
Handle open_attr(const File& f, const std::string& obj, const std::string& name) {
  if (H5Aexists_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) <= 0) {
    f.fail(cat("attribute '", name, "' is missing"));
  }
  Handle a(H5Aopen_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid()) f.fail(cat("cannot open attribute '", name, "'"));
  Handle space(H5Aget_space(a.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) f.fail(cat("attribute '", name, "' is not a scalar"));
  return a;
}
}  // namespace

std::string File::read_attr_str(const std::string& obj, const std::string& name) const {
  Lock lock;
  Handle a = open_attr(*this, obj, name);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) fail(cat("attribute '", name, "' is not a string"));
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* s = nullptr;
    if (H5Aread(a.get(), mem.get(), &s) < 0) fail(cat("cannot read attribute '", name, "'"));
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const size_t size = H5Tget_size(type.get());
  if (size > (size_t{1} << 26)) fail(cat("attribute '", name, "' is implausibly large"));
  std::string out(size, '\0');
  if (H5Aread(a.get(), type.get(), out.data()) < 0) fail(cat("cannot read attribute '", name, "'"));
  out.resize(strnlen(out.data(), size));
  return out;
}

int64_t File::read_attr_i64(const std::string& obj, const std::string& name) const {
  Lock lock;
  Handle a = open_attr(*this, obj, name);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER) fail(cat("attribute '", name, "' is not an integer"));
  int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) fail(cat("cannot read attribute '", name, "'"));
  return v;
}

double File::read_attr_f64(const std::string& obj, const std::string& name) const {
  Lock lock;
  Handle a = open_attr(*this, obj, name);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) fail(cat("attribute '", name, "' is not a number"));
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail(cat("cannot read attribute '", name, "'"));
  return v;
}

namespace {
void write_attr(const File& f, const std::string& obj, const std::string& name, hid_t type, const void* value) {
  if (H5Aexists_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0) {
    H5Adelete_by_name(f.id(), obj.c_str(), name.c_str(), H5P_DEFAULT);
  }
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate_by_name(f.id(), obj.c_str(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT),
           H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), type, value) < 0) f.fail(cat("cannot write attribute '", name, "'"));
}
}  // namespace

void File::write_attr_str(const std::string& obj, const std::string& name, const std::string& value) {
  Lock lock;
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const char* p = value.c_str();
  write_attr(*this, obj, name, type.get(), &p);
}

void File::write_attr_str_fixed(const std::string& obj, const std::string& name, const std::string& value) {
  Lock lock;
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  write_attr(*this, obj, name, type.get(), padded.data());
}

void File::write_attr_i64(const std::string& obj, const std::string& name, int64_t value) {
  Lock lock;
  write_attr(*this, obj, name, H5T_NATIVE_INT64, &value);
}

void File::write_attr_f64(const std::string& obj, const std::string& name, double value) {
  Lock lock;
  write_attr(*this, obj, name, H5T_NATIVE_DOUBLE, &value);
}

}  // namespace ddpm::h5
