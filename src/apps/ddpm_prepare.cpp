// ddpm_prepare: turn an image collection into a sharded HDF5 dataset (docs/data.md).
//   ddpm_prepare cifar10 --src cifar-10-binary.tar.gz --split train --out data/cifar10
//   ddpm_prepare folder  --src celeba_hq/ --resolution 256 --out data/celebahq256
//   ddpm_prepare lsun    --src church_outdoor_train_lmdb --resolution 256 --out data/church256
//   ddpm_prepare mnist   --src mnist/ --split train --resolution 32 --out data/mnist
//   ddpm_prepare verify  --data data/cifar10
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "apps/cli.h"
#include "core/common.h"
#include "data/prepare.h"
#include "data/progress.h"
#include "data/shard_reader.h"
#include "data/source.h"

namespace ddpm {
namespace {

constexpr const char* kUsage =
    "usage: ddpm_prepare COMMAND [options]\n\n"
    "commands:\n"
    "  cifar10   the CIFAR-10 binary distribution (tarball or extracted folder)\n"
    "  folder    PNG and JPEG files found recursively (e.g. CelebA-HQ)\n"
    "  lsun      an LSUN LMDB export (church_outdoor, bedroom, cat, ...)\n"
    "  mnist     the MNIST IDX files\n"
    "  verify    check a prepared dataset: manifest, shards and every image's checksum\n\n"
    "Run 'ddpm_prepare COMMAND --help' for the options of a command.\n";

constexpr int64_t kDefaultShardSize = 10000;

void add_output_options(Cli& cli) {
  cli.option("out", "DIR", "dataset directory to write (an existing dataset there is replaced as a whole)");
  cli.option("shards", "N", "number of shards");
  cli.option("shard-size", "S", "images per shard, instead of --shards (default: 10000)");
  cli.option("resolution", "R", "centre crop and resample every image to R x R (default: keep the source size)");
  cli.flag("rgb", "store grey images with 3 channels instead of 1");
  cli.flag("strict", "stop at the first image that cannot be decoded (default: report it and skip it)");
  cli.option("threads", "T", "decode threads, 0 for one per core", "0");
  cli.option("limit", "N", "import only the first N images of the source");
  cli.flag("quiet", "no progress bar");
}

// Parses a subcommand's options; stray words are errors rather than silently ignored.
void parse(Cli& cli, int argc, char** argv) {
  cli.parse(argc, argv, 2);
  if (!cli.positional().empty()) input_error("unexpected argument '", cli.positional()[0], "' (options start with --)");
}

int64_t positive(const Cli& cli, const std::string& name, int64_t lo, int64_t hi) {
  const int64_t v = cli.get_int(name);
  if (v < lo || v > hi) input_error("--", name, " must be in ", lo, "..", hi, " (got ", v, ")");
  return v;
}

data::PrepareOptions output_options(const Cli& cli) {
  data::PrepareOptions o;
  o.out_dir = cli.require("out");
  if (cli.has("shards") && cli.has("shard-size")) input_error("give --shards or --shard-size, not both");
  if (cli.has("shards")) o.num_shards = positive(cli, "shards", 1, data::kMaxShards);
  o.shard_size = cli.has("shard-size") ? positive(cli, "shard-size", 1, data::kMaxImagesPerShard)
                                       : (cli.has("shards") ? 0 : kDefaultShardSize);
  if (cli.has("resolution")) o.resolution = static_cast<int>(positive(cli, "resolution", 1, data::kMaxSide));
  if (cli.has("limit")) o.limit = positive(cli, "limit", 1, data::kMaxImages);
  o.threads = static_cast<int>(positive(cli, "threads", 0, 1024));
  o.force_rgb = cli.has("rgb");
  o.strict = cli.has("strict");
  o.progress = !cli.has("quiet");
  return o;
}

int run_import(const Cli& cli, data::ImageSource& source) {
  const data::PrepareOptions options = output_options(cli);
  const data::PrepareReport r = data::prepare_dataset(source, options);
  const data::Manifest& m = r.manifest;
  int64_t bytes = 0;
  for (const data::ShardEntry& s : m.shards) bytes += s.bytes;
  std::printf("wrote %lld images (%s%s) in %zu shards, %.1f MB, to %s in %s\n", static_cast<long long>(m.count),
              data::shape_string(m.shape).c_str(), m.has_labels ? ", with labels" : "", m.shards.size(),
              static_cast<double>(bytes) * 1e-6, options.out_dir.c_str(), data::format_duration(r.seconds).c_str());
  if (r.skipped > 0) std::printf("skipped %lld images that could not be read or decoded\n", static_cast<long long>(r.skipped));
  return kExitOk;
}

// One importer: its command line and how it opens its source (split is ignored by
// the sources that have none).
struct Importer {
  const char* name;
  const char* usage;
  const char* description;
  const char* src_help;
  const char* split_help;  // nullptr: no --split
  std::unique_ptr<data::ImageSource> (*open)(const std::string& src, data::Split split);
};

const Importer kImporters[] = {
    {"cifar10", "--src PATH --split train|test --out DIR [options]",
     "Imports the CIFAR-10 binary version: cifar-10-binary.tar.gz as downloaded, or the extracted "
     "cifar-10-batches-bin folder. Labels are kept.",
     "the tarball or the extracted folder", "train: data_batch_1..5 (50000 images); test: test_batch (10000)",
     data::open_cifar10},
    {"folder", "--src DIR --out DIR [options]",
     "Imports every PNG and JPEG file under DIR (recursively, in path order). The dataset is grey when "
     "every image is grey (unless --rgb), else RGB.",
     "the folder of images", nullptr, [](const std::string& src, data::Split) { return data::open_folder(src); }},
    {"lsun", "--src PATH --out DIR [options]",
     "Imports an LSUN LMDB export (e.g. church_outdoor_train_lmdb): WebP or JPEG values, in key order, RGB.",
     "the LMDB directory (with data.mdb) or the data.mdb file", nullptr,
     [](const std::string& src, data::Split) { return data::open_lsun(src); }},
    {"mnist", "--src DIR --split train|test --out DIR [options]",
     "Imports MNIST from its IDX files in DIR ({train,t10k}-images-idx3-ubyte and -labels-idx1-ubyte, "
     "gzipped or not). Grey: 1 channel, or 3 with --rgb.",
     "the folder with the IDX files", "train (60000 images) or test (t10k, 10000)", data::open_mnist},
};

int cmd_import(const Importer& im, int argc, char** argv) {
  Cli cli(std::string("ddpm_prepare ") + im.name, im.usage, im.description);
  cli.option("src", "PATH", im.src_help);
  if (im.split_help) cli.option("split", "train|test", im.split_help, "train");
  add_output_options(cli);
  parse(cli, argc, argv);
  const data::Split split = im.split_help ? data::parse_split(cli.get("split")) : data::Split::kTrain;
  const std::unique_ptr<data::ImageSource> source = im.open(cli.require("src"), split);
  return run_import(cli, *source);
}

int cmd_verify(int argc, char** argv) {
  Cli cli("ddpm_prepare verify", "--data DIR [--quick]",
          "Checks a prepared dataset as the loader does: the manifest, every shard's format, dims and tables, "
          "and (unless --quick) every image against its checksum. Exit status 2 names the first problem.");
  cli.option("data", "DIR", "the dataset directory");
  cli.flag("quick", "check the manifest and shards only, not every image");
  cli.flag("quiet", "no progress bar");
  parse(cli, argc, argv);
  const std::string dir = cli.require("data");
  data::DatasetReader reader(dir);
  const data::Manifest& m = reader.manifest();
  if (!cli.has("quick")) {
    std::vector<uint8_t> image(static_cast<size_t>(m.shape.bytes()));
    data::ProgressBar bar("verify", m.count, !cli.has("quiet"));
    for (int64_t i = 0; i < m.count; ++i) {
      reader.read(i, image.data());
      bar.update(i + 1);
    }
    bar.finish();
  }
  std::printf("%s: ok, %lld images of %s in %zu shards%s, checksum %08x\n", dir.c_str(),
              static_cast<long long>(m.count), data::shape_string(m.shape).c_str(), m.shards.size(),
              cli.has("quick") ? " (images not read)" : "", m.fingerprint());
  return kExitOk;
}

int dispatch(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitBadInput : kExitOk;
  }
  const std::string command = argv[1];
  for (const Importer& im : kImporters) {
    if (command == im.name) return cmd_import(im, argc, argv);
  }
  if (command == "verify") return cmd_verify(argc, argv);
  input_error("unknown command '", command, "' (see ddpm_prepare --help)");
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  return ddpm::run_app("ddpm_prepare", [&] { return ddpm::dispatch(argc, argv); });
}
