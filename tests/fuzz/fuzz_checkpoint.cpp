// Weights files and training checkpoints (HDF5) as ddpm_sample / ddpm_eval load them
// (load_model_source: model_config, config, the ema or params group) and as a resumed
// run reads them (read_checkpoint: every group, the step and data cursor).
#include "core/h5.h"
#include "core/unet.h"
#include "io/weights_io.h"
#include "fuzz_util.h"
#include "io/checkpoint.h"
#include "io/model_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddpm;
  const std::string path = fuzz::write_scratch("ckpt.h5", data, size);
  fuzz::expect_clean([&] { load_model_source(path, "", "auto"); });
  fuzz::expect_clean([&] {
    const UNet net(read_model_config(h5::File::open_read(path)));
    const int64_t n = net.layout().size();
    HostFloats params = alloc_host_floats(n), ema = alloc_host_floats(n), m = alloc_host_floats(n),
               v = alloc_host_floats(n);
    read_checkpoint(path, net.layout(), TrainBuffers{params.get(), ema.get(), m.get(), v.get()});
  });
  return 0;
}
