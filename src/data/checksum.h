// The checksum of shard images and tables: CRC-32 (zlib's, the IEEE polynomial), so
// that any tool with zlib or Python's zlib.crc32 can check a shard independently.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>

namespace ddpm::data {

inline uint32_t crc32_of(const void* data, size_t size, uint32_t crc = 0) {
  const auto* p = static_cast<const Bytef*>(data);
  // zlib takes uInt lengths: feed blocks below 1 GiB.
  constexpr size_t kBlock = size_t{1} << 30;
  while (size > 0) {
    const size_t n = size < kBlock ? size : kBlock;
    crc = static_cast<uint32_t>(::crc32(crc, p, static_cast<uInt>(n)));
    p += n;
    size -= n;
  }
  return crc;
}

}  // namespace ddpm::data
