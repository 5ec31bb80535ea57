// The LSUN importer on an LMDB (DIR/data.mdb): the environment, the cursor walk, the
// keys and every value, decoded as `ddpm_prepare lsun` does.
#include "data/prepare.h"
#include "fuzz_source.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddpm;
  const std::string dir = fuzz::fresh_scratch_dir("lsun");
  fuzz::write_scratch("lsun/data.mdb", data, size);
  fuzz::expect_clean([&] { fuzz::drain(*data::open_lsun(dir)); });
  return 0;
}
