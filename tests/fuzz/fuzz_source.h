// Drains an importer as prepare_dataset does: size, channels, then every item through
// prepare_image (bad items are InputErrors that prepare_dataset reports and skips).
#pragma once

#include "data/prepare.h"
#include "fuzz_util.h"

namespace ddpm::fuzz {

inline void drain(data::ImageSource& source) {
  source.size();
  source.has_labels();
  const int channels = source.native_channels();
  data::SourceItem item;
  for (int64_t i = 0; i < 1024 && source.next(&item); ++i) {
    if (item.read_error.empty()) expect_clean([&] { data::prepare_image(item, channels, 8); });
  }
}

}  // namespace ddpm::fuzz
