// CIFAR-10, the official binary distribution (https://www.cs.toronto.edu/~kriz/cifar.html):
// data_batch_1..5.bin (train) and test_batch.bin (test), each 10000 records of a label
// byte and 3072 pixel bytes (the red, green and blue 32x32 planes). Read from the
// tarball as downloaded or from the extracted folder, always in the batches' order.
#include <cstdio>
#include <fstream>

#include "core/common.h"
#include "core/fs.h"
#include "data/source.h"
#include "data/archive_reader.h"

namespace ddpm::data {
namespace {

constexpr int kSide = 32;
constexpr int64_t kRecordsPerBatch = 10000;
constexpr int64_t kPlaneBytes = kSide * kSide;
constexpr int64_t kRecordBytes = 1 + 3 * kPlaneBytes;
constexpr int64_t kBatchBytes = kRecordsPerBatch * kRecordBytes;

std::vector<std::string> batch_names(Split split) {
  if (split == Split::kTest) return {"test_batch.bin"};
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) names.push_back(cat("data_batch_", i, ".bin"));
  return names;
}

void check_batch_size(const std::string& where, int64_t size) {
  if (size != kBatchBytes) {
    input_error(where, ": ", size, " bytes, expected ", kBatchBytes, " (", kRecordsPerBatch, " records of ",
                kRecordBytes, " bytes); is this the CIFAR-10 binary version?");
  }
}

class Cifar10Source : public ImageSource {
 public:
  Cifar10Source(const std::string& path, Split split) : path_(path), names_(batch_names(split)) {
    batches_.resize(names_.size());
    description_ = cat("cifar10 ", split == Split::kTrain ? "train" : "test", " from ", fs::basename(path));
    if (fs::is_dir(path)) {
      // The extracted folder, or its parent.
      folder_ = fs::exists(fs::join(path, names_[0])) ? path : fs::join(path, "cifar-10-batches-bin");
      for (const std::string& name : names_) {
        const std::string file = fs::join(folder_, name);
        if (!fs::exists(file)) input_error(path, ": no ", name, " here or in cifar-10-batches-bin/");
      }
    } else {
      read_tarball();
    }
  }

  std::string description() const override { return description_; }
  int64_t size() const override { return kRecordsPerBatch * static_cast<int64_t>(names_.size()); }
  bool has_labels() const override { return true; }
  int native_channels() override { return 3; }

  bool next(SourceItem* item) override {
    if (next_ >= size()) return false;
    const size_t b = static_cast<size_t>(next_ / kRecordsPerBatch);
    const int64_t r = next_ % kRecordsPerBatch;
    ++next_;
    if (batches_[b].empty()) load_file(b);
    if (b > 0) std::vector<uint8_t>().swap(batches_[b - 1]);  // done with the previous batch
    const uint8_t* record = batches_[b].data() + r * kRecordBytes;
    item->name = cat(names_[b], " record ", r);
    item->encoded.clear();
    item->read_error.clear();
    item->label = record[0];
    if (record[0] > 9) item->read_error = cat("label ", int{record[0]}, " is not a CIFAR-10 class (0..9)");
    // Planes R, G, B of 32x32 -> interleaved HWC.
    Image& img = item->raw;
    img.height = img.width = kSide;
    img.channels = 3;
    img.pixels.resize(3 * kPlaneBytes);
    for (int64_t i = 0; i < kPlaneBytes; ++i) {
      for (int c = 0; c < 3; ++c) img.pixels[3 * i + c] = record[1 + c * kPlaneBytes + i];
    }
    return true;
  }

 private:
  std::string path_, folder_, description_;
  std::vector<std::string> names_;
  std::vector<std::vector<uint8_t>> batches_;  // [batch][kBatchBytes], loaded when needed
  int64_t next_ = 0;

  void load_file(size_t b) {
    const std::string file = fs::join(folder_, names_[b]);
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    if (!in) input_error(file, ": cannot read the file");
    check_batch_size(file, static_cast<int64_t>(in.tellg()));
    in.seekg(0);
    batches_[b].resize(kBatchBytes);
    if (!in.read(reinterpret_cast<char*>(batches_[b].data()), kBatchBytes)) input_error(file, ": read failed");
  }

  // The tarball's members may come in any order: keep the wanted ones (30 MB each).
  void read_tarball() {
    ArchiveReader tar(path_);
    std::string name;
    int64_t size = 0;
    while (tar.next_file(&name, &size)) {
      for (size_t b = 0; b < names_.size(); ++b) {
        if (fs::basename(name) != names_[b]) continue;
        check_batch_size(cat(path_, ": ", name), size);
        batches_[b].resize(kBatchBytes);
        tar.read(batches_[b].data(), kBatchBytes);
      }
    }
    for (size_t b = 0; b < names_.size(); ++b) {
      if (batches_[b].empty()) input_error(path_, ": the archive has no ", names_[b], " (not the CIFAR-10 binary version?)");
    }
  }
};

}  // namespace

std::unique_ptr<ImageSource> open_cifar10(const std::string& path, Split split) {
  if (!fs::exists(path)) input_error(path, ": no such file or directory");
  return std::make_unique<Cifar10Source>(path, split);
}

}  // namespace ddpm::data
