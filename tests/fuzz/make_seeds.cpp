// Writes the seed corpus of every harness (tests/fuzz/corpus/<target>/) with ddpm's own
// writers and the data tests' encoders, so that each seed is an input the project
// itself produces and reads back:
//   fuzz_make_seeds OUT_DIR          (bench/fuzz.sh --seeds refreshes the committed one)
#include <cstdio>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/fs.h"
#include "core/unet.h"
#include "io/weights_io.h"
#include "eval/frechet.h"
#include "io/npz.h"
#include "fixtures.h"
#include "fuzz_util.h"
#include "io/checkpoint.h"

namespace {

using namespace ddpm;
using ddpm::testing::pattern_image;

std::string bytes_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::string file_bytes(const std::string& path) { return bytes_of(ddpm::testing::read_file(path)); }

void put(const std::string& out, const std::string& target, const std::string& name, const std::string& bytes) {
  ddpm::testing::make_dirs(out + "/" + target);
  ddpm::testing::write_file(out + "/" + target + "/" + name, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

void config_seeds(const std::string& out) {
  for (const char* name : {"tiny.yaml", "cifar10.yaml", "celebahq256.yaml"}) {
    put(out, "fuzz_config", name, fs::read_text(std::string(DDPM_SOURCE_DIR) + "/configs/" + name));
  }
  put(out, "fuzz_config", "resolved.yaml", Config().to_yaml());
}

void dataset_seeds(const std::string& out, const ddpm::testing::TempDir& tmp) {
  struct Variant {
    const char* name;
    data::ImageShape shape;
    bool labels;
  };
  for (const Variant& v : {Variant{"rgb-labels", {4, 4, 3}, true}, Variant{"grey", {3, 5, 1}, false}}) {
    const std::string dir = tmp / v.name;
    const data::Manifest m = ddpm::testing::write_synthetic_dataset(dir, 3, v.shape, 1, v.labels);
    const std::string manifest = file_bytes(dir + "/manifest");
    put(out, "fuzz_manifest", v.name, manifest);
    put(out, "fuzz_shard", v.name, fuzz::join_files({manifest, file_bytes(dir + "/" + m.shards[0].file)}));
  }
}

void checkpoint_seeds(const std::string& out, const ddpm::testing::TempDir& tmp) {
  Config cfg;
  cfg.model.resolution = 4;
  cfg.model.ch = 32;
  cfg.model.ch_mult = {1};
  cfg.model.num_res_blocks = 0;
  cfg.model.attn_resolutions = {};
  const UNet net(cfg.model);
  const int64_t n = net.layout().size();
  std::vector<float> params(static_cast<size_t>(n)), ema(params.size()), m(params.size()), v(params.size());
  for (int64_t i = 0; i < n; ++i) {
    params[static_cast<size_t>(i)] = 0.01f * static_cast<float>(i % 97);
    ema[static_cast<size_t>(i)] = 0.5f * params[static_cast<size_t>(i)];
    v[static_cast<size_t>(i)] = 1e-6f;
  }
  save_weights(tmp / "weights.h5", cfg.model, net.layout(), params.data(), ema.data());
  put(out, "fuzz_checkpoint", "weights.h5", file_bytes(tmp / "weights.h5"));
  TrainState state;
  state.step = state.iteration = 7;
  state.data_position = 56;
  state.config_yaml = cfg.to_yaml();
  const std::string path = write_checkpoint(tmp / "checkpoints", cfg.model, net.layout(),
                                            TrainBuffers{params.data(), ema.data(), m.data(), v.data()}, state, 1);
  put(out, "fuzz_checkpoint", "checkpoint.h5", file_bytes(path));
}

void decode_seeds(const std::string& out) {
  const data::Image rgb = pattern_image(6, 5, 3, 1), grey = pattern_image(5, 6, 1, 2);
  const data::Image smooth = pattern_image(16, 16, 3, 3, true);
  put(out, "fuzz_decode", "rgb.png", bytes_of(ddpm::testing::encode_png(rgb)));
  put(out, "fuzz_decode", "grey.png", bytes_of(ddpm::testing::encode_png(grey)));
  put(out, "fuzz_decode", "rgb16-alpha-interlaced.png",
      bytes_of(ddpm::testing::encode_png(rgb, {16, true, false, true})));
  put(out, "fuzz_decode", "palette.png", bytes_of(ddpm::testing::encode_png(rgb, {8, false, true, false})));
  put(out, "fuzz_decode", "rgb.jpg", bytes_of(ddpm::testing::encode_jpeg(smooth, 80)));
  put(out, "fuzz_decode", "grey.jpg", bytes_of(ddpm::testing::encode_jpeg(pattern_image(8, 8, 1, 4, true), 80)));
  put(out, "fuzz_decode", "rgb.webp", bytes_of(ddpm::testing::encode_webp_lossless(rgb)));
}

std::vector<data::Image> images(int n, int h, int w, int c) {
  std::vector<data::Image> v;
  for (int i = 0; i < n; ++i) v.push_back(pattern_image(h, w, c, static_cast<uint32_t>(i)));
  return v;
}

void importer_seeds(const std::string& out, const ddpm::testing::TempDir& tmp) {
  // CIFAR-10: a full-size test batch (10,000 records; the importer checks the size),
  // gzipped, and a plain tar whose batch is short (the size check's path).
  const std::string bin = tmp / "cifar/cifar-10-batches-bin";
  ddpm::testing::make_dirs(bin);
  std::vector<data::Image> cifar = images(10000, 32, 32, 3);
  std::vector<uint8_t> labels(10000);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>(i % 10);
  for (size_t i = 4; i < cifar.size(); ++i) cifar[i] = cifar[i % 4];  // repeats within gzip's window
  ddpm::testing::write_cifar_batch(bin + "/test_batch.bin", cifar, labels);
  auto tar = [&](const std::string& flags, const std::string& name) {
    if (ddpm::testing::run_command("tar -C " + tmp.path() + "/cifar " + flags + " " + (tmp / name) +
                                   " cifar-10-batches-bin") != 0) {
      std::fprintf(stderr, "fuzz_make_seeds: tar failed\n");
      std::exit(1);
    }
    return file_bytes(tmp / name);
  };
  put(out, "fuzz_cifar10", "test-batch.tar.gz", tar("-czf", "cifar.tar.gz"));
  ddpm::testing::write_cifar_batch(bin + "/test_batch.bin", images(2, 32, 32, 3), {3, 4});
  put(out, "fuzz_cifar10", "short-batch.tar", tar("-cf", "cifar.tar"));

  // MNIST: images and labels, plain and gzipped.
  for (const char* suffix : {"", ".gz"}) {
    const std::string dir = tmp / (std::string("mnist") + suffix);
    ddpm::testing::make_dirs(dir);
    ddpm::testing::write_idx_images(dir + "/i" + suffix, images(3, 28, 28, 1));
    ddpm::testing::write_idx_labels(dir + "/l" + suffix, {1, 2, 3});
    put(out, "fuzz_mnist", std::string("idx") + suffix,
        fuzz::join_files({file_bytes(dir + "/i" + suffix), file_bytes(dir + "/l" + suffix)}));
  }

  // LSUN: an LMDB of two JPEGs and a PNG under LSUN-style keys.
  ddpm::testing::write_lmdb(tmp / "lsun", {{"0001a", ddpm::testing::encode_jpeg(pattern_image(8, 8, 3, 5, true))},
                                          {"0002b", ddpm::testing::encode_png(pattern_image(8, 8, 3, 6))},
                                          {"0003c", ddpm::testing::encode_jpeg(pattern_image(9, 7, 3, 7, true))}});
  put(out, "fuzz_lsun", "data.mdb", file_bytes(tmp / "lsun/data.mdb"));
}

// .npz files as ddpm writes them (numpy's own, compressed and with zip64 records and
// data descriptors, are committed beside them as numpy-*.npz).
void npz_seeds(const std::string& out, const ddpm::testing::TempDir& tmp) {
  const std::vector<double> matrix = {0.5, -1.25, 3.0, 1e-300, -0.0, 7.0};
  const std::vector<float> vector = {1.5f, -2.0f, 0.25f};
  const std::vector<uint8_t> images = {0, 1, 2, 3, 250, 251, 252, 253, 128, 64, 32, 16};
  write_npz(tmp / "arrays.npz", {{"matrix", NpyView::of(matrix, {2, 3})},
                                       {"vector", NpyView::of(vector, {3})},
                                       {"images", NpyView::of(images, {2, 2, 1, 3})},
                                       {"scalar", NpyView::of(std::vector<double>{2.5}, {})}});
  put(out, "fuzz_npz", "arrays.npz", file_bytes(tmp / "arrays.npz"));
  eval::FeatureStats stats;
  stats.dim = 2;
  stats.mu = {0.5, -0.5};
  stats.sigma = {2.0, 0.5, 0.5, 1.0};
  eval::write_fid_stats(tmp / "stats.npz", stats);
  put(out, "fuzz_npz", "stats.npz", file_bytes(tmp / "stats.npz"));
  // With its provenance: string scalars ('<U') and an int64 scalar.
  stats.provenance.resize = "tf";
  stats.provenance.weights_sha256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";
  stats.provenance.images = 2;
  eval::write_fid_stats(tmp / "stats_provenance.npz", stats);
  put(out, "fuzz_npz", "stats_provenance.npz", file_bytes(tmp / "stats_provenance.npz"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds OUT_DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  const ddpm::testing::TempDir tmp;
  config_seeds(out);
  dataset_seeds(out, tmp);
  checkpoint_seeds(out, tmp);
  decode_seeds(out);
  importer_seeds(out, tmp);
  npz_seeds(out, tmp);
  std::printf("seeds written to %s\n", out.c_str());
  return 0;
}
