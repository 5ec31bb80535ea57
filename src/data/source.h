// What an importer hands to prepare_dataset(): a sequence of items, each an encoded
// image (decoded in parallel later) or raw pixels, with an optional label.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"

namespace ddpm::data {

struct SourceItem {
  std::string name;              // for messages: a file path, an LMDB key, "data_batch_1.bin record 17"
  std::vector<uint8_t> encoded;  // PNG, JPEG or WebP bytes; empty when `raw` holds the pixels
  Image raw;                     // decoded pixels, for sources that store them (CIFAR-10, MNIST)
  int32_t label = -1;            // -1: none
  std::string read_error;        // non-empty: the item could not be read (reported, then skipped)
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // Recorded as the shards' `source` attribute and in the manifest.
  virtual std::string description() const = 0;
  // The number of items next() yields.
  virtual int64_t size() const = 0;
  virtual bool has_labels() const = 0;
  // The dataset's channel count without --rgb: 1 if the source is grey, else 3.
  virtual int native_channels() = 0;
  // Fills *item with the next item; false at the end. Fatal problems (a missing or
  // malformed container) throw InputError; a single unreadable item sets read_error.
  virtual bool next(SourceItem* item) = 0;
};

// Reads up to max_bytes of a file into *out (all of it when max_bytes is -1); on failure
// returns false with the reason in *error. Files over kMaxSourceFileBytes are refused.
constexpr int64_t kMaxSourceFileBytes = int64_t{256} << 20;
bool read_file_bytes(const std::string& path, int64_t max_bytes, std::vector<uint8_t>* out, std::string* error);

// The importers, one file each (import_*.cpp). Paths are checked when opened; errors
// name the file and the problem.
enum class Split { kTrain, kTest };
Split parse_split(const std::string& text);  // "train" | "test"

// The official binary distribution: cifar-10-binary.tar.gz, or the extracted folder
// (cifar-10-batches-bin, or its parent).
std::unique_ptr<ImageSource> open_cifar10(const std::string& path, Split split);
// PNG and JPEG files found recursively under dir, in byte order of their relative paths.
std::unique_ptr<ImageSource> open_folder(const std::string& dir);
// An LSUN LMDB export (a directory with data.mdb, or the data.mdb file itself).
std::unique_ptr<ImageSource> open_lsun(const std::string& path);
// The IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte, optionally .gz) in dir.
std::unique_ptr<ImageSource> open_mnist(const std::string& dir, Split split);

}  // namespace ddpm::data
