// Checked, hardened HDF5 access. Every file a user hands us (weights, checkpoints,
// shards, eval inputs) is opened through H5File, which
//  - refuses files that are not HDF5 with one clear line naming the file,
//  - turns off HDF5's own error printing and plugin loading (no code runs from a file),
//  - opens only hard links (no external or soft links),
//  - refuses external storage and virtual datasets,
//  - checks dtype, rank and sizes before anything is allocated.
// Any failure on a user file is an InputError "<file>: <problem>".
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/common.h"

namespace ddpm::h5 {

// Global setup, idempotent: silence the automatic error stack, disable plugins.
void init();

// Every HDF5 call in ddpm holds this lock, whether or not the library was built
// thread-safe (File's methods take it themselves; hold a Lock around raw calls on
// File::id()).
std::recursive_mutex& library_mutex();

// The library lock, and the automatic error printing silenced on the calling thread:
// Debian's HDF5 is the thread-safe build, where that setting is per thread, and our
// errors are one line (the loader's prefetch thread, the checkpoint writer).
class Lock {
 public:
  Lock();
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  std::lock_guard<std::recursive_mutex> guard_;
};

// Owning hid_t with the right close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  ~Handle() { reset(); }
  void reset();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

enum class DType { kFloat32, kFloat64, kInt32, kInt64, kUInt8, kOther };
const char* dtype_name(DType t);

struct DatasetInfo {
  DType dtype = DType::kOther;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

class File {
 public:
  // Opens for reading; an InputError names the file if it is missing or not HDF5.
  static File open_read(const std::string& path);
  // The same for files ddpm writes with create_checksummed (checkpoints, weights,
  // shards): a file in an older format is refused from its superblock's bytes, before
  // HDF5 parses metadata that nothing checks. `remedy` ends the message.
  static File open_read_checksummed(const std::string& path, const std::string& remedy);
  // Creates (truncates) a file for writing.
  static File create(const std::string& path);
  // The same in the HDF5 1.10 file format, whose metadata (superblock, object headers,
  // chunk indexes) carries checksums that HDF5 verifies when reading: a flipped bit there
  // becomes an error instead of being parsed. Readable by HDF5 >= 1.10 (h5py included).
  // Links and attributes stay in the (checksummed) object headers of every file this
  // class creates: HDF5's dense storage keeps them in fractal-heap blocks without a
  // checksum, and HDF5 1.10 can crash on a damaged one (tests/fuzz found it).
  static File create_checksummed(const std::string& path);

  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }
  void close();

  bool has_group(const std::string& name) const;
  bool has_dataset(const std::string& name) const;
  // Names of the hard-linked members of a group, in HDF5's name order.
  std::vector<std::string> list(const std::string& group) const;

  DatasetInfo info(const std::string& name) const;
  // Reads a whole dataset, converting integer types to the requested type where the
  // conversion is exact; dtype mismatches for float data are errors (caller decides).
  void read_f32(const std::string& name, float* out, int64_t n) const;
  void read_f64(const std::string& name, double* out, int64_t n) const;
  void read_i64(const std::string& name, int64_t* out, int64_t n) const;
  void read_u8(const std::string& name, uint8_t* out, int64_t n) const;

  void create_group(const std::string& name);
  void write_f32(const std::string& name, const float* data, const std::vector<int64_t>& shape);
  void write_f64(const std::string& name, const double* data, const std::vector<int64_t>& shape);
  void write_i64(const std::string& name, const int64_t* data, const std::vector<int64_t>& shape);

  // Attributes on the root group ("/") or on a named object.
  bool has_attr(const std::string& obj, const std::string& name) const;
  std::string read_attr_str(const std::string& obj, const std::string& name) const;
  int64_t read_attr_i64(const std::string& obj, const std::string& name) const;
  double read_attr_f64(const std::string& obj, const std::string& name) const;
  void write_attr_str(const std::string& obj, const std::string& name, const std::string& value);
  // A fixed-length string, stored in the object header (checksummed in the 1.10 format)
  // instead of the global heap, which HDF5 parses without checksums: for files that must
  // survive bit flips (data shards). read_attr_str reads both kinds.
  void write_attr_str_fixed(const std::string& obj, const std::string& name, const std::string& value);
  void write_attr_i64(const std::string& obj, const std::string& name, int64_t value);
  void write_attr_f64(const std::string& obj, const std::string& name, double value);

  // Opens a dataset for partial reads after the hardening checks. Without the chunk
  // cache every read goes to the file (a dataset read once per epoch gains nothing from
  // it, and a file damaged or cut since it was opened is noticed at once).
  Handle open_dataset(const std::string& name, bool chunk_cache = true) const;

  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string path_;
  Handle file_;
  bool writable_ = false;
  bool compact_only_ = false;  // opened with open_read_checksummed
  std::string remedy_;
  static File create_with(const std::string& path, bool checksummed);
  void check_hard_link(const std::string& name) const;
  void require_compact(hid_t group, const std::string& name, const H5G_info_t& info) const;
  void read_raw(const std::string& name, hid_t mem_type, void* out, int64_t n, DType want) const;
};

}  // namespace ddpm::h5
