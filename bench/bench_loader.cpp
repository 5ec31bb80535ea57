// Loader throughput: images/s delivered to one rank by data::Loader (one prefetch thread,
// page-cached shards), at 32x32 (CIFAR-10, batch 128) and 256x256 (LSUN/CelebA-HQ,
// batch 64). The targets are what a training rank needs so that it never waits on data:
// 2,000 img/s at 32x32 and 300 img/s at 256x256 (issue 3).
//   bench_loader [--dir /tmp] [--seconds 3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/common.h"
#include "core/diffusion_ops.h"
#include "core/ops.h"
#include "core/rng.h"
#include "data/checksum.h"
#include "data/dataset_dir.h"
#include "data/loader.h"
#include "data/shard_writer.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace ddpm;

struct Case {
  const char* name;
  int side, batch;
  int64_t images, shards;
  double target;  // img/s per rank
};

// Synthetic shards: Philox noise (incompressible, like photographs after decoding).
void write_dataset(const std::string& dir, const Case& c) {
  const data::ImageShape shape{c.side, c.side, 3};
  data::DatasetWriter writer(dir, "bench_loader synthetic", c.images, c.shards, 0, false);
  writer.set_shape(shape);
  std::vector<uint8_t> px(static_cast<size_t>(shape.bytes()));
  for (int64_t i = 0; i < c.images; ++i) {
    for (size_t k = 0; k < px.size(); k += 16) {
      const u32x4 r = philox4x32_10(philox_counter(Purpose::kTest, 0, 0, static_cast<uint32_t>(i),
                                                   static_cast<uint32_t>(k / 16)),
                                    philox_key(42));
      std::memcpy(px.data() + k, r.w, std::min<size_t>(16, px.size() - k));
    }
    writer.add(i, px.data(), data::crc32_of(px.data(), px.size()), -1);
  }
  writer.commit();
}

struct Result {
  double raw_rate = 0, model_rate = 0;
};

// Times next() (and next() + the CPU backend's images_to_model, as training converts) for `seconds` each, after a warm-up epoch
// that brings the shards into the page cache.
Result measure(const std::string& dir, const Case& c, double seconds) {
  data::LoaderOptions o;
  o.path = dir;
  o.global_batch = c.batch;
  o.seed = 1;
  o.prefetch_batches = 4;
  Result r;
  {
    data::Loader warm(o);
    for (int64_t n = 0; n < c.images; n += c.batch) warm.next();
  }
  const std::unique_ptr<Ops> cpu = make_cpu_ops();
  for (int with_conversion = 0; with_conversion < 2; ++with_conversion) {
    data::Loader loader(o);
    std::vector<float> input(static_cast<size_t>(c.batch) * c.side * c.side * 3);
    loader.next();  // the first batch includes opening and validating the shards
    int64_t images = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      const data::Batch b = loader.next();
      if (with_conversion) {
        cpu->diffusion().images_to_model(input.data(), b.pixels.data(), static_cast<int64_t>(b.pixels.size()));
      }
      images += b.n;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    (with_conversion ? r.model_rate : r.raw_rate) = images / elapsed;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root = "/tmp";
  double seconds = 3.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--dir") == 0) root = argv[i + 1];
    else if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
  }
  const Case cases[] = {
      {"32x32", 32, 128, 50000, 5, 2000.0},   // CIFAR-10 train
      {"256x256", 256, 64, 3000, 3, 300.0},   // 590 MB: a slice of LSUN / CelebA-HQ
  };
  std::printf("ddpm loader benchmark: one rank, 1 prefetch thread (queue 4), flips on, shards in the page cache\n\n");
  std::printf("%-9s %6s %7s %7s %12s %18s %9s %8s %s\n", "images", "batch", "count", "shards", "img/s next()",
              "img/s +to_float", "MB/s", "target", "");
  bool all_ok = true;
  for (const Case& c : cases) {
    const std::string dir = root + "/ddpm-bench-loader-" + c.name;
    try {
      write_dataset(dir, c);
      const Result r = measure(dir, c, seconds);
      const bool ok = r.raw_rate >= c.target;
      all_ok = all_ok && ok;
      std::printf("%-9s %6d %7lld %7lld %12.0f %18.0f %9.1f %8.0f %s\n", c.name, c.batch,
                  static_cast<long long>(c.images), static_cast<long long>(c.shards), r.raw_rate, r.model_rate,
                  r.raw_rate * c.side * c.side * 3 * 1e-6, c.target, ok ? "ok" : "BELOW TARGET");
      data::remove_dataset_dir(dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_loader: %s\n", e.what());
      return 1;
    }
  }
  std::printf("\nimg/s next(): batches taken as fast as the loader delivers them (the consumer does nothing).\n"
              "img/s +to_float: the same, with the conversion to the model's float input [-1, 1] on the consumer.\n");
  return all_ok ? 0 : 3;
}
