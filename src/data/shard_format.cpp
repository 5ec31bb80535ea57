#include "data/shard_format.h"

#include <cstdio>
#include <cstring>

#include "core/common.h"
#include "data/checksum.h"

namespace ddpm::data {

std::string shape_string(const ImageShape& shape) {
  return cat(shape.height, "x", shape.width, "x", shape.channels);
}

void check_shape(int64_t height, int64_t width, int64_t channels, const std::string& where) {
  if (height < 1 || height > kMaxSide || width < 1 || width > kMaxSide) {
    input_error(where, ": image size ", height, "x", width, " is outside 1..", kMaxSide);
  }
  if (channels != 1 && channels != 3) input_error(where, ": ", channels, " channels (expected 1 or 3)");
}

std::string shard_file_name(int64_t index, int64_t num_shards) {
  char name[64];
  std::snprintf(name, sizeof(name), "shard-%05lld-of-%05lld.h5", static_cast<long long>(index),
                static_cast<long long>(num_shards));
  return name;
}

namespace {
bool digits_at(const std::string& s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}
}  // namespace

bool is_dataset_entry_name(const std::string& name) {
  if (name == kManifestName || name == std::string(kManifestName) + ".tmp") return true;
  // shard-NNNNN-of-NNNNN.h5[.tmp]
  std::string base = name;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".tmp") == 0) base.resize(base.size() - 4);
  return base.size() == 23 && base.compare(0, 6, "shard-") == 0 && digits_at(base, 6, 5) &&
         base.compare(11, 4, "-of-") == 0 && digits_at(base, 15, 5) && base.compare(20, 3, ".h5") == 0;
}

namespace {
void append_le32(std::vector<uint8_t>* out, uint32_t v) {
  for (int b = 0; b < 4; ++b) out->push_back(static_cast<uint8_t>(v >> (8 * b)));
}
}  // namespace

uint32_t shard_checksum(const std::vector<uint32_t>& image_checksums, const std::vector<int32_t>& labels) {
  std::vector<uint8_t> bytes;
  bytes.reserve(4 * (image_checksums.size() + labels.size()));
  for (uint32_t c : image_checksums) append_le32(&bytes, c);
  for (int32_t l : labels) append_le32(&bytes, static_cast<uint32_t>(l));
  return crc32_of(bytes.data(), bytes.size());
}

}  // namespace ddpm::data
