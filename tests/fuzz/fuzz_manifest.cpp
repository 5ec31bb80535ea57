// The dataset manifest parser (DIR/manifest), on its own: every field and limit.
#include "data/manifest.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ddpm::fuzz::expect_clean([&] {
    const ddpm::data::Manifest m = ddpm::data::Manifest::parse(text, "fuzz/manifest");
    // What parse accepts, to_yaml must write back and parse must accept again.
    if (ddpm::data::Manifest::parse(m.to_yaml(), "fuzz/manifest (rewritten)").fingerprint() != m.fingerprint()) {
      std::abort();
    }
  });
  return 0;
}
