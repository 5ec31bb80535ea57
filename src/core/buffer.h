// Owning handles for backend memory. A Buffer owns n floats that an Ops allocated and
// gives them back through Ops::release when it goes, so no caller frees by hand.
// A ParamBuffer is a Buffer of model weights that also carries a version: the weight
// caches of the convolutions (Conv2d, keyed by pointer and version) reorder the weights
// again only when the version changes, so whoever changes the values (the optimizer
// step, a load, a copy) calls changed(), and no caller invents version numbers.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ops.h"

namespace ddpm {

class Buffer {
 public:
  Buffer() = default;
  Buffer(Ops& ops, int64_t n);                          // zero-filled
  Buffer(Ops& ops, const std::vector<float>& host);     // a copy of host
  ~Buffer() { reset(); }
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer gone(std::move(other));
    swap(gone);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  float* get() const { return data_; }
  int64_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }
  Ops* ops() const { return ops_; }
  // The values as a host vector (a download).
  std::vector<float> host() const;
  // Releases the memory now; the buffer is then empty.
  void reset();

 private:
  void swap(Buffer& other) noexcept;

  Ops* ops_ = nullptr;
  float* data_ = nullptr;
  int64_t size_ = 0;
};

class ParamBuffer : public Buffer {
 public:
  ParamBuffer() = default;
  ParamBuffer(Ops& ops, int64_t n) : Buffer(ops, n) {}
  // The version of the current values; never the same for two different states of any
  // two buffers in the process, so (pointer, version) cannot match a freed buffer's.
  uint64_t version() const { return version_; }
  // Call after changing the values.
  void changed() { version_ = next_version(); }
  // Uploads size() floats from the host and takes a new version.
  void load(const float* host);
  // Copies another buffer's values and takes a new version.
  void copy_from(const Buffer& source);

 private:
  static uint64_t next_version();
  uint64_t version_ = next_version();
};

}  // namespace ddpm
