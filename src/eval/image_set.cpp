#include "eval/image_set.h"

#include "core/common.h"
#include "core/fs.h"
#include "data/decode.h"
#include "data/shard_reader.h"
#include "data/source.h"
#include "io/npz.h"

namespace ddpm::eval {
namespace {

// arr_0 [N, H, W, C] uint8 (C 1 or 3), streamed one image at a time.
class NpzImages final : public ImageSet {
 public:
  explicit NpzImages(const std::string& path) : ImageSet(path), npz_(path), rows_(open_rows()) {
    const NpyHeader& h = rows_.header();
    if (h.dtype != NpyDType::kUInt8 || h.shape.size() != 4 || (h.shape[3] != 1 && h.shape[3] != 3)) {
      input_error(path, ": arr_0 is ", dtype_descr(h.dtype), " ", shape_text(h.shape),
                  ", expected uint8 [N, H, W, C] images with C 1 or 3");
    }
    height_ = static_cast<int>(h.shape[1]), width_ = static_cast<int>(h.shape[2]);
    channels_ = static_cast<int>(h.shape[3]);
  }
  int64_t size() const override { return rows_.rows(); }
  bool next(data::Image* image) override {
    if (rows_.rows_left() == 0) return false;
    image->height = height_, image->width = width_, image->channels = channels_;
    image->pixels.resize(static_cast<size_t>(rows_.row_bytes()));
    rows_.read(1, image->pixels.data());
    return true;
  }

 private:
  NpyRowReader open_rows() {
    if (!npz_.contains("arr_0")) {
      input_error(path_, ": no arr_0 (images); a statistics file (mu, sigma) only serves as FID's reference");
    }
    return npz_.rows("arr_0");
  }
  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
  NpzReader npz_;
  NpyRowReader rows_;
  int height_ = 0, width_ = 0, channels_ = 0;
};

class DatasetImages final : public ImageSet {
 public:
  explicit DatasetImages(const std::string& dir) : ImageSet(dir), reader_(dir) {}
  int64_t size() const override { return reader_.count(); }
  bool next(data::Image* image) override {
    if (next_ == reader_.count()) return false;
    const data::ImageShape s = reader_.shape();
    image->height = s.height, image->width = s.width, image->channels = s.channels;
    image->pixels.resize(static_cast<size_t>(s.bytes()));
    reader_.read(next_++, image->pixels.data());
    return true;
  }

 private:
  data::DatasetReader reader_;
  int64_t next_ = 0;
};

class FolderImages final : public ImageSet {
 public:
  explicit FolderImages(const std::string& dir) : ImageSet(dir), source_(data::open_folder(dir)) {}
  int64_t size() const override { return source_->size(); }
  bool next(data::Image* image) override {
    data::SourceItem item;
    if (!source_->next(&item)) return false;
    if (!item.read_error.empty()) input_error(item.name, ": ", item.read_error);
    try {
      *image = data::decode_image(item.encoded.data(), item.encoded.size());
    } catch (const InputError& e) {
      input_error(item.name, ": ", e.what());
    }
    return true;
  }

 private:
  std::unique_ptr<data::ImageSource> source_;
};

class MemoryImages final : public ImageSet {
 public:
  MemoryImages(const uint8_t* pixels, int64_t n, int height, int width, int channels, const std::string& name)
      : ImageSet(name), pixels_(pixels), n_(n), height_(height), width_(width), channels_(channels) {}
  int64_t size() const override { return n_; }
  bool next(data::Image* image) override {
    if (next_ == n_) return false;
    const int64_t bytes = int64_t{height_} * width_ * channels_;
    image->height = height_, image->width = width_, image->channels = channels_;
    image->pixels.assign(pixels_ + next_ * bytes, pixels_ + (next_ + 1) * bytes);
    ++next_;
    return true;
  }

 private:
  const uint8_t* pixels_;
  int64_t n_, next_ = 0;
  int height_, width_, channels_;
};

}  // namespace

std::unique_ptr<ImageSet> memory_image_set(const uint8_t* pixels, int64_t n, int height, int width, int channels,
                                           const std::string& name) {
  return std::make_unique<MemoryImages>(pixels, n, height, width, channels, name);
}

std::unique_ptr<ImageSet> open_image_set(const std::string& path) {
  if (fs::is_dir(path)) {
    if (fs::exists(fs::join(path, "manifest"))) return std::make_unique<DatasetImages>(path);
    return std::make_unique<FolderImages>(path);
  }
  if (!fs::exists(path)) input_error(path, ": no such file or directory");
  return std::make_unique<NpzImages>(path);
}

}  // namespace ddpm::eval
