// PNG, JPEG and WebP bytes as ddpm_prepare's importers hand them on (prepare_image:
// decode, convert to grey and to RGB, centre-crop and resize), plus the header probe
// the folder importer uses to pick the dataset's channel count.
#include "data/decode.h"
#include "data/prepare.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddpm::data;
  sniff_codec(data, size);
  probe_channels(data, size);
  for (int channels : {1, 3}) {
    ddpm::fuzz::expect_clean([&] {
      SourceItem item;
      item.encoded.assign(data, data + size);
      prepare_image(item, channels, channels == 1 ? 0 : 16);
    });
  }
  return 0;
}
