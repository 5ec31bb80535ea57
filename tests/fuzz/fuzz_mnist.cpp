// The MNIST importer on IDX files: the input is the images file and the labels file
// (joined by kFileSeparator), read as train-{images-idx3,labels-idx1}-ubyte; a gzip
// magic makes them .gz files, as the importer accepts both.
#include <vector>

#include "data/prepare.h"
#include "fuzz_source.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddpm;
  const std::vector<std::string> files = fuzz::split_files(data, size, 2);
  const std::string dir = fuzz::fresh_scratch_dir("mnist");
  auto is_gzip = [](const std::string& b) { return b.size() >= 2 && b[0] == '\x1f' && b[1] == '\x8b'; };
  fuzz::write_scratch(std::string("mnist/train-images-idx3-ubyte") + (is_gzip(files[0]) ? ".gz" : ""), files[0]);
  fuzz::write_scratch(std::string("mnist/train-labels-idx1-ubyte") + (is_gzip(files[1]) ? ".gz" : ""), files[1]);
  fuzz::expect_clean([&] { fuzz::drain(*data::open_mnist(dir, data::Split::kTrain)); });
  return 0;
}
