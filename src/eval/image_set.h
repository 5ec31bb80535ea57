// The sets of images the evaluation reads, one image at a time: a .npz with `arr_0`
// uint8 [N, H, W, C] (ddpm_sample's samples.npz, OpenAI's reference batches), a prepared
// dataset directory (its manifest), or a folder of PNG/JPEG files (recursive, in byte
// order of their paths). Errors are InputErrors naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/image.h"

namespace ddpm::eval {

class ImageSet {
 public:
  virtual ~ImageSet() = default;
  virtual int64_t size() const = 0;
  // The next image (RGB or grey, any size); false at the end.
  virtual bool next(data::Image* image) = 0;
  const std::string& path() const { return path_; }

 protected:
  explicit ImageSet(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

std::unique_ptr<ImageSet> open_image_set(const std::string& path);
// n images [n, height, width, channels] uint8 held by the caller, who keeps them alive;
// `name` stands for the path in messages.
std::unique_ptr<ImageSet> memory_image_set(const uint8_t* pixels, int64_t n, int height, int width, int channels,
                                           const std::string& name);

}  // namespace ddpm::eval
