// The YAML config parser, as ddpm_train/ddpm_sample read --config: the whole file, then
// the model section alone as a weights file's model_config attribute is read.
#include "core/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ddpm::fuzz::expect_clean([&] { ddpm::parse_config(text, "fuzz.yaml", {"train.batch_size=4"}); });
  ddpm::fuzz::expect_clean([&] { ddpm::ModelConfig::from_yaml_text(text, "fuzz model_config").validate("fuzz"); });
  return 0;
}
