#include "data/shard_writer.h"

#include <sys/stat.h>

#include "core/common.h"
#include "core/fs.h"
#include "data/dataset_dir.h"
#include "data/shard_format.h"

namespace ddpm::data {
namespace {

using h5::Lock;

void write_table(const h5::File& file, const char* name, hid_t file_type, hid_t mem_type, const void* data,
                 int64_t n) {
  const hsize_t dims[1] = {static_cast<hsize_t>(n)};
  h5::Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  h5::Handle ds(H5Dcreate2(file.id(), name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) file.fail(cat("cannot create the dataset '", name, "'"));
  if (n > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    file.fail(cat("cannot write the dataset '", name, "' (disk full?)"));
  }
}

}  // namespace

ShardFileWriter::ShardFileWriter(const std::string& path, const ImageShape& shape, int64_t capacity, bool labels,
                                 int64_t shard_index, int64_t num_shards, const std::string& source)
    : path_(path),
      shape_(shape),
      capacity_(capacity),
      shard_index_(shard_index),
      num_shards_(num_shards),
      labels_(labels),
      source_(source),
      file_(h5::File::create_checksummed(path)) {
  Lock lock;
  const hsize_t dims[4] = {static_cast<hsize_t>(capacity), static_cast<hsize_t>(shape.height),
                           static_cast<hsize_t>(shape.width), static_cast<hsize_t>(shape.channels)};
  const hsize_t chunk[4] = {1, dims[1], dims[2], dims[3]};  // one image per chunk
  h5::Handle space(H5Screate_simple(4, dims, nullptr), H5Sclose);
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(dcpl.get(), 4, chunk);
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);  // every chunk is written once, by add()
  images_ = h5::Handle(H5Dcreate2(file_.id(), "images", H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                       H5Dclose);
  if (!images_.valid()) file_.fail("cannot create the dataset 'images'");
  checksums_.reserve(static_cast<size_t>(capacity));
}

void ShardFileWriter::add(const uint8_t* pixels, uint32_t checksum, int32_t label) {
  const int64_t i = static_cast<int64_t>(checksums_.size());
  DDPM_CHECK(i < capacity_, "shard ", path_, " is full");
  {
    Lock lock;
    const hsize_t start[4] = {static_cast<hsize_t>(i), 0, 0, 0};
    const hsize_t count[4] = {1, static_cast<hsize_t>(shape_.height), static_cast<hsize_t>(shape_.width),
                              static_cast<hsize_t>(shape_.channels)};
    h5::Handle file_space(H5Dget_space(images_.get()), H5Sclose);
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    h5::Handle mem_space(H5Screate_simple(4, count, nullptr), H5Sclose);
    if (H5Dwrite(images_.get(), H5T_NATIVE_UINT8, mem_space.get(), file_space.get(), H5P_DEFAULT, pixels) < 0) {
      file_.fail(cat("cannot write image ", i, " (disk full?)"));
    }
  }
  checksums_.push_back(checksum);
  if (labels_) label_values_.push_back(label);
}

ShardEntry ShardFileWriter::finish() {
  const int64_t n = static_cast<int64_t>(checksums_.size());
  {
    Lock lock;
    if (n < capacity_) {
      // Some items were skipped: shrink to the images written (chunked datasets may
      // shrink; the unwritten chunks were never allocated).
      const hsize_t dims[4] = {static_cast<hsize_t>(n), static_cast<hsize_t>(shape_.height),
                               static_cast<hsize_t>(shape_.width), static_cast<hsize_t>(shape_.channels)};
      if (H5Dset_extent(images_.get(), dims) < 0) file_.fail("cannot trim the dataset 'images'");
    }
    images_.reset();
    write_table(file_, "checksums", H5T_STD_U32LE, H5T_NATIVE_UINT32, checksums_.data(), n);
    if (labels_) write_table(file_, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, label_values_.data(), n);
  }
  const uint32_t checksum = shard_checksum(checksums_, label_values_);
  file_.write_attr_str_fixed("/", "format", kShardFormat);
  file_.write_attr_i64("/", "version", kShardVersion);
  file_.write_attr_i64("/", "height", shape_.height);
  file_.write_attr_i64("/", "width", shape_.width);
  file_.write_attr_i64("/", "channels", shape_.channels);
  file_.write_attr_i64("/", "count", n);
  file_.write_attr_i64("/", "shard_index", shard_index_);
  file_.write_attr_i64("/", "num_shards", num_shards_);
  file_.write_attr_str_fixed("/", "source", source_);
  file_.write_attr_i64("/", "checksum", checksum);
  file_.close();  // strings are fixed-length: no global heap, which HDF5 parses unchecked
  fs::fsync_path(path_);
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) input_error(path_, ": cannot stat the shard just written");
  return ShardEntry{fs::basename(path_), n, static_cast<int64_t>(st.st_size), checksum};
}

// ---- DatasetWriter

DatasetWriter::DatasetWriter(const std::string& out_dir, const std::string& source, int64_t planned_items,
                             int64_t num_shards, int64_t shard_size, bool labels)
    : out_dir_(normalize_dir(out_dir)), source_(source), labels_(labels) {
  if ((num_shards > 0) == (shard_size > 0)) input_error("give exactly one of --shards and --shard-size");
  if (planned_items < 1) input_error("the source has no images");
  if (planned_items > kMaxImages) input_error("the source has ", planned_items, " images, over the limit of ", kMaxImages);
  if (shard_size > 0) num_shards = (planned_items + shard_size - 1) / shard_size;
  if (num_shards > planned_items) input_error("--shards ", num_shards, " is more than the ", planned_items, " images");
  if (num_shards > kMaxShards) input_error(num_shards, " shards is over the limit of ", kMaxShards, " (use bigger shards)");
  for (int64_t k = 0; k <= num_shards; ++k) {
    shard_begin_.push_back(shard_size > 0 ? std::min(k * shard_size, planned_items) : k * planned_items / num_shards);
  }
  for (int64_t k = 0; k < num_shards; ++k) {
    if (shard_begin_[k + 1] - shard_begin_[k] > kMaxImagesPerShard) {
      input_error("shards of ", shard_begin_[k + 1] - shard_begin_[k], " images are over the limit of ",
                  kMaxImagesPerShard, " (use more shards)");
    }
  }
  staging_ = out_dir_ + ".partial";
  if (fs::exists(out_dir_)) check_replaceable_dataset_dir(out_dir_);
  if (fs::exists(staging_)) {
    check_replaceable_dataset_dir(staging_);  // left by a run that was killed: ours to clear
    remove_dataset_dir(staging_);
  }
  fs::make_dirs(staging_);
}

DatasetWriter::~DatasetWriter() {
  if (committed_) return;
  writer_.reset();
  try {
    remove_dataset_dir(staging_);
  } catch (const std::exception&) {
    // Leave it: the next run clears it.
  }
}

void DatasetWriter::open_shard(int64_t k) {
  DDPM_CHECK(shape_.bytes() > 0, "set_shape() before add()");
  current_ = k;
  writer_ = std::make_unique<ShardFileWriter>(fs::join(staging_, shard_file_name(k, num_shards())), shape_,
                                              shard_begin_[k + 1] - shard_begin_[k], labels_, k, num_shards(), source_);
}

void DatasetWriter::close_shard() {
  entries_.push_back(writer_->finish());
  writer_.reset();
}

void DatasetWriter::add(int64_t item, const uint8_t* pixels, uint32_t checksum, int32_t label) {
  DDPM_CHECK(item >= 0 && item < shard_begin_.back(), "item ", item);
  while (current_ < 0 || item >= shard_begin_[current_ + 1]) {
    if (writer_) close_shard();
    open_shard(current_ + 1);
  }
  writer_->add(pixels, checksum, label);
}

Manifest DatasetWriter::commit() {
  while (current_ + 1 < num_shards() || writer_) {
    if (writer_) close_shard();
    if (current_ + 1 < num_shards()) open_shard(current_ + 1);
  }
  Manifest m;
  m.source = source_;
  m.shape = shape_;
  m.has_labels = labels_;
  m.shards = entries_;
  for (const ShardEntry& e : entries_) m.count += e.count;
  if (m.count == 0) input_error("no image could be imported; nothing written");
  fs::write_text_atomic(fs::join(staging_, kManifestName), m.to_yaml());
  fs::fsync_path(staging_);
  swap_into_place(staging_, out_dir_);
  committed_ = true;
  return m;
}

}  // namespace ddpm::data
