#include "data/shard_reader.h"

#include <sys/stat.h>

#include <algorithm>

#include "core/common.h"
#include "core/fs.h"
#include "core/library_calls.h"
#include "data/checksum.h"

namespace ddpm::data {
namespace {

using h5::Lock;

// True if `type` is an integer of `size` bytes with the given signedness.
bool is_integer(hid_t type, size_t size, bool is_signed) {
  return H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == size &&
         (H5Tget_sign(type) == H5T_SGN_2) == is_signed;
}

std::vector<hsize_t> dims_of(hid_t dataset) {
  h5::Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0 || rank > 8) return {};
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::string dims_string(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += cat(i ? ", " : "", dims[i]);
  return s + "]";
}

// Variable-length strings live in HDF5's global heap, which the library parses without
// checksums (a flipped bit there can make it loop): shards store fixed-length strings.
void require_fixed_string(const h5::File& f, const char* name) {
  Lock lock;
  if (!f.has_attr("/", name)) f.fail(cat("attribute '", name, "' is missing"));
  h5::Handle attr(H5Aopen_by_name(f.id(), "/", name, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  h5::Handle type(attr.valid() ? H5Aget_type(attr.get()) : -1, H5Tclose);
  if (!type.valid() || H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) != 0) {
    f.fail(cat("attribute '", name, "' is not a fixed-length string"));
  }
}

}  // namespace

ShardReader::ShardReader(const Expected& expected) : expected_(expected) {
  const std::string& path = expected.path;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) input_error(path, ": missing (the manifest lists it)");
  if (!S_ISREG(st.st_mode)) input_error(path, ": not a regular file");
  if (st.st_size != expected.entry.bytes) {
    input_error(path, ": ", st.st_size, " bytes, the manifest says ", expected.entry.bytes,
                " (truncated or replaced since it was written)");
  }
  file_ = h5::File::open_read_checksummed(path, "rewrite the dataset with ddpm_prepare");
  validate_attributes();
  open_images();
  read_tables();
}

void ShardReader::validate_attributes() {
  const Expected& e = expected_;
  require_fixed_string(file_, "format");
  const std::string format = file_.read_attr_str("/", "format");
  if (format != kShardFormat) file_.fail(cat("format is '", format, "', expected '", kShardFormat, "'"));
  const int64_t version = file_.read_attr_i64("/", "version");
  if (version != kShardVersion) file_.fail(cat("shard version ", version, " is not supported (this build reads ", kShardVersion, ")"));
  const auto expect = [&](const char* name, int64_t want) {
    const int64_t got = file_.read_attr_i64("/", name);
    if (got != want) file_.fail(cat("attribute ", name, " is ", got, ", the manifest says ", want));
  };
  expect("height", e.shape.height);
  expect("width", e.shape.width);
  expect("channels", e.shape.channels);
  expect("count", e.entry.count);
  expect("shard_index", e.shard_index);
  expect("num_shards", e.num_shards);
  const int64_t checksum = file_.read_attr_i64("/", "checksum");
  if (checksum != e.entry.checksum) {
    file_.fail(cat("attribute checksum is ", checksum, ", the manifest says ", e.entry.checksum));
  }
}

void ShardReader::open_images() {
  Lock lock;
  const Expected& e = expected_;
  images_ = file_.open_dataset("images", /*chunk_cache=*/false);  // hard link, no external storage or virtual layout
  h5::Handle type(H5Dget_type(images_.get()), H5Tclose);
  if (!is_integer(type.get(), 1, false)) file_.fail("'images' is not uint8");
  const std::vector<hsize_t> want = {static_cast<hsize_t>(e.entry.count), static_cast<hsize_t>(e.shape.height),
                                     static_cast<hsize_t>(e.shape.width), static_cast<hsize_t>(e.shape.channels)};
  const std::vector<hsize_t> dims = dims_of(images_.get());
  if (dims != want) file_.fail(cat("'images' has shape ", dims_string(dims), ", expected ", dims_string(want)));
  h5::Handle dcpl(H5Dget_create_plist(images_.get()), H5Pclose);
  hsize_t chunk[4] = {0, 0, 0, 0};
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED || H5Pget_chunk(dcpl.get(), 4, chunk) != 4 || chunk[0] != 1 ||
      chunk[1] != want[1] || chunk[2] != want[2] || chunk[3] != want[3]) {
    file_.fail("'images' is not stored one image per chunk");
  }
  // Shards are never compressed: a filter could only come from elsewhere (and plugin
  // loading is off in any case).
  if (H5Pget_nfilters(dcpl.get()) != 0) file_.fail("'images' uses an HDF5 filter, which ddpm shards do not; refused");
  const hsize_t one[4] = {1, want[1], want[2], want[3]};
  file_space_ = h5::Handle(H5Dget_space(images_.get()), H5Sclose);
  mem_space_ = h5::Handle(H5Screate_simple(4, one, nullptr), H5Sclose);
}

void ShardReader::read_tables() {
  Lock lock;
  const Expected& e = expected_;
  const hsize_t n = static_cast<hsize_t>(e.entry.count);
  const auto read_table = [&](const char* name, size_t size, bool is_signed, hid_t mem_type, void* out) {
    h5::Handle ds = file_.open_dataset(name);
    h5::Handle type(H5Dget_type(ds.get()), H5Tclose);
    if (!is_integer(type.get(), size, is_signed)) file_.fail(cat("'", name, "' is not ", is_signed ? "int" : "uint", 8 * size));
    const std::vector<hsize_t> dims = dims_of(ds.get());
    if (dims != std::vector<hsize_t>{n}) file_.fail(cat("'", name, "' has shape ", dims_string(dims), ", expected [", n, "]"));
    if (n > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
      file_.fail(cat("cannot read '", name, "' (file truncated or corrupt)"));
    }
  };
  checksums_.resize(n);
  read_table("checksums", 4, false, H5T_NATIVE_UINT32, checksums_.data());
  const bool has_labels = file_.has_dataset("labels");
  if (has_labels != e.labels) file_.fail(e.labels ? "'labels' is missing" : "has 'labels' but the manifest says none");
  if (e.labels) {
    labels_.resize(n);
    read_table("labels", 4, true, H5T_NATIVE_INT32, labels_.data());
  }
  const uint32_t computed = shard_checksum(checksums_, labels_);
  if (computed != e.entry.checksum) file_.fail("its checksum and label tables do not match its checksum (corrupt)");
}

void ShardReader::read_image(int64_t i, int64_t dataset_index, uint8_t* out) {
  DDPM_CHECK(i >= 0 && i < expected_.entry.count, "image ", i);
  const int64_t bytes = expected_.shape.bytes();
  {
    Lock lock;
    const LibraryCall in_hdf5(Library::kHdf5);  // H5Dread allocates its I/O state on every call
    const hsize_t start[4] = {static_cast<hsize_t>(i), 0, 0, 0};
    const hsize_t count[4] = {1, static_cast<hsize_t>(expected_.shape.height),
                              static_cast<hsize_t>(expected_.shape.width), static_cast<hsize_t>(expected_.shape.channels)};
    if (H5Sselect_hyperslab(file_space_.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
        H5Dread(images_.get(), H5T_NATIVE_UINT8, mem_space_.get(), file_space_.get(), H5P_DEFAULT, out) < 0) {
      file_.fail(cat("cannot read image ", i, " (dataset index ", dataset_index, "): ", what_changed()));
    }
  }
  if (crc32_of(out, static_cast<size_t>(bytes)) != checksums_[static_cast<size_t>(i)]) {
    file_.fail(cat("image ", i, " (dataset index ", dataset_index, ") fails its checksum: ", what_changed()));
  }
}

// Why a read of a shard that was valid when opened fails: the file as it is now.
std::string ShardReader::what_changed() const {
  struct stat st;
  if (stat(expected_.path.c_str(), &st) != 0) return "the file is gone since it was opened";
  if (st.st_size != expected_.entry.bytes) {
    return cat("the file is now ", st.st_size, " bytes, ", expected_.entry.bytes,
               " when it was opened (cut short or replaced meanwhile)");
  }
  return "the shard is corrupt";
}

// ---- DatasetReader

DatasetReader::DatasetReader(const std::string& dir, int max_open_shards)
    : dir_(dir), manifest_(Manifest::read_dir(dir)), max_open_(std::max(1, max_open_shards)) {
  const int64_t num_shards = static_cast<int64_t>(manifest_.shards.size());
  shard_start_.push_back(0);
  for (const ShardEntry& s : manifest_.shards) shard_start_.push_back(shard_start_.back() + s.count);
  open_.resize(static_cast<size_t>(num_shards));
  last_use_.assign(static_cast<size_t>(num_shards), 0);
  if (manifest_.has_labels) labels_.reserve(static_cast<size_t>(manifest_.count));
  for (int64_t k = 0; k < num_shards; ++k) {
    auto reader = std::make_unique<ShardReader>(expected(k));
    labels_.insert(labels_.end(), reader->labels().begin(), reader->labels().end());
    if (open_count_ < max_open_) {
      open_[static_cast<size_t>(k)] = std::move(reader);
      ++open_count_;
    }
  }
}

ShardReader::Expected DatasetReader::expected(int64_t k) const {
  ShardReader::Expected e;
  e.entry = manifest_.shards[static_cast<size_t>(k)];
  e.path = fs::join(dir_, e.entry.file);
  e.shard_index = k;
  e.num_shards = static_cast<int64_t>(manifest_.shards.size());
  e.shape = manifest_.shape;
  e.labels = manifest_.has_labels;
  return e;
}

ShardReader& DatasetReader::shard(int64_t k) {
  const size_t slot = static_cast<size_t>(k);
  last_use_[slot] = ++clock_;
  if (!open_[slot]) {
    if (open_count_ >= max_open_) {
      size_t victim = slot;
      for (size_t i = 0; i < open_.size(); ++i) {
        if (open_[i] && (victim == slot || last_use_[i] < last_use_[victim])) victim = i;
      }
      open_[victim].reset();
      --open_count_;
    }
    open_[slot] = std::make_unique<ShardReader>(expected(k));
    ++open_count_;
  }
  return *open_[slot];
}

void DatasetReader::read(int64_t index, uint8_t* out) {
  DDPM_CHECK(index >= 0 && index < count(), "image ", index);
  // The shard whose range holds index (empty shards have equal starts: take the last).
  const auto it = std::upper_bound(shard_start_.begin(), shard_start_.end(), index);
  const int64_t k = (it - shard_start_.begin()) - 1;
  shard(k).read_image(index - shard_start_[static_cast<size_t>(k)], index, out);
}

int32_t DatasetReader::label(int64_t index) const {
  return labels_.empty() ? -1 : labels_[static_cast<size_t>(index)];
}

}  // namespace ddpm::data
