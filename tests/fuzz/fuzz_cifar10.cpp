// The CIFAR-10 importer on a (gzipped or plain) tar archive: the tar reader, the batch
// file names and sizes, every record, as `ddpm_prepare cifar10` reads them.
#include "data/prepare.h"
#include "fuzz_util.h"
#include "fuzz_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddpm::data;
  const std::string path = ddpm::fuzz::write_scratch("cifar-10-binary.tar.gz", data, size);
  for (Split split : {Split::kTrain, Split::kTest}) {
    ddpm::fuzz::expect_clean([&] { ddpm::fuzz::drain(*open_cifar10(path, split)); });
  }
  return 0;
}
