// MNIST in its IDX files (http://yann.lecun.com/exdb/mnist/): images
// {train,t10k}-images-idx3-ubyte (magic 0x803, count, rows, cols, then count*rows*cols
// bytes) and labels {train,t10k}-labels-idx1-ubyte (magic 0x801, count, then count
// bytes), as downloaded (.gz) or decompressed. Both are streamed, never held whole.
#include <zlib.h>

#include "core/common.h"
#include "core/fs.h"
#include "data/shard_format.h"
#include "data/source.h"

namespace ddpm::data {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

// The file as named, or with .gz; "" if neither exists.
std::string find_idx(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {fs::join(dir, name), fs::join(dir, name + ".gz")}) {
    if (fs::exists(candidate)) return candidate;
  }
  return "";
}

// A gzip or plain file read front to back (zlib reads both).
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path), gz_(gzopen(path.c_str(), "rb")) {
    if (!gz_) input_error(path, ": cannot open");
  }
  ~GzFile() { gzclose(gz_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  void read(void* out, int64_t n, const std::string& what) {
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      const int got = gzread(gz_, p, static_cast<unsigned>(n < (1 << 30) ? n : (1 << 30)));
      if (got <= 0) input_error(path_, ": truncated or corrupt (ends in ", what, ")");
      p += got;
      n -= got;
    }
  }
  uint32_t read_be32(const std::string& what) {
    uint8_t b[4];
    read(b, 4, what);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }

 private:
  std::string path_;
  gzFile gz_;
};

class MnistSource : public ImageSource {
 public:
  MnistSource(const std::string& dir, Split split) {
    const std::string prefix = split == Split::kTrain ? "train" : "t10k";
    const std::string images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
    if (images_path.empty()) input_error(dir, ": no ", prefix, "-images-idx3-ubyte[.gz]");
    images_ = std::make_unique<GzFile>(images_path);
    images_name_ = fs::basename(images_path);
    if (images_->read_be32("the header") != kImagesMagic) input_error(images_path, ": not an IDX image file (bad magic)");
    count_ = images_->read_be32("the header");
    const uint32_t rows = images_->read_be32("the header"), cols = images_->read_be32("the header");
    check_shape(rows, cols, 1, images_path);
    rows_ = static_cast<int>(rows);
    cols_ = static_cast<int>(cols);

    const std::string labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
    if (!labels_path.empty()) {
      labels_ = std::make_unique<GzFile>(labels_path);
      if (labels_->read_be32("the header") != kLabelsMagic) input_error(labels_path, ": not an IDX label file (bad magic)");
      const uint32_t n = labels_->read_be32("the header");
      if (n != count_) input_error(labels_path, ": ", n, " labels for ", count_, " images in ", images_name_);
    }
    description_ = cat("mnist ", prefix, " from ", images_name_);
  }

  std::string description() const override { return description_; }
  int64_t size() const override { return count_; }
  bool has_labels() const override { return labels_ != nullptr; }
  int native_channels() override { return 1; }

  bool next(SourceItem* item) override {
    if (next_ >= count_) return false;
    item->name = cat(images_name_, " image ", next_);
    item->encoded.clear();
    item->read_error.clear();
    Image& img = item->raw;
    img.height = rows_;
    img.width = cols_;
    img.channels = 1;
    img.pixels.resize(static_cast<size_t>(rows_) * cols_);
    images_->read(img.pixels.data(), static_cast<int64_t>(img.pixels.size()), cat("image ", next_));
    item->label = -1;
    if (labels_) {
      uint8_t label = 0;
      labels_->read(&label, 1, cat("label ", next_));
      item->label = label;
    }
    ++next_;
    return true;
  }

 private:
  std::unique_ptr<GzFile> images_, labels_;
  std::string images_name_, description_;
  int64_t count_ = 0, next_ = 0;
  int rows_ = 0, cols_ = 0;
};

}  // namespace

std::unique_ptr<ImageSource> open_mnist(const std::string& dir, Split split) {
  if (!fs::is_dir(dir)) input_error(dir, ": not a directory (give the folder with the IDX files)");
  return std::make_unique<MnistSource>(dir, split);
}

}  // namespace ddpm::data
