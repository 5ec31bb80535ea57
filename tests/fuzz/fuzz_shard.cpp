// A dataset directory as the loader and `ddpm_prepare verify` open it: the input is a
// manifest and the shard it names (joined by kFileSeparator); every image and label is
// read, as verify does.
#include <fstream>
#include <vector>

#include "data/shard_reader.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddpm;
  const std::vector<std::string> files = fuzz::split_files(data, size, 2);
  const std::string dir = fuzz::fresh_scratch_dir("dataset");
  fuzz::write_scratch("dataset/manifest", files[0]);
  fuzz::expect_clean([&] {
    // The shard goes under the name the manifest gives (when it parses), so that a
    // mutated shard reaches the HDF5 checks.
    const data::Manifest m = data::Manifest::parse(files[0], dir + "/manifest");
    if (!m.shards.empty()) fuzz::write_scratch("dataset/" + m.shards[0].file, files[1]);
    data::DatasetReader reader(dir, 4);
    std::vector<uint8_t> image(static_cast<size_t>(reader.shape().height) * reader.shape().width *
                               reader.shape().channels);
    for (int64_t i = 0; i < reader.count(); ++i) {
      reader.read(i, image.data());
      reader.label(i);
    }
  });
  return 0;
}
