// Round trips for every importer (source -> shards -> reader gives back the same pixels),
// skipping and --strict, sharding, and the commit protocol of the output directory.
#define BOOST_TEST_MODULE data_importers
#include <boost/test/unit_test.hpp>

#include <dirent.h>

#include <algorithm>
#include <set>

#include "core/fs.h"
#include "core/h5.h"
#include "data/decode.h"
#include "data/prepare.h"
#include "data/resize.h"
#include "data/shard_reader.h"
#include "fixtures.h"

using namespace ddpm;
using namespace ddpm::data;
using namespace ddpm::testing;

namespace {

struct Run {
  PrepareReport report;
  std::vector<std::string> skipped;  // "name: reason"
};

Run prepare(ImageSource& source, const std::string& out, const std::function<void(PrepareOptions&)>& tweak = {}) {
  Run run;
  PrepareOptions o;
  o.out_dir = out;
  o.num_shards = 2;
  o.progress = false;
  o.threads = 2;
  o.on_skip = [&run](const std::string& what) { run.skipped.push_back(what); };
  if (tweak) tweak(o);
  run.report = prepare_dataset(source, o);
  return run;
}

// Every image of a dataset, in dataset order.
std::vector<Image> read_all(const std::string& dir, std::vector<int32_t>* labels = nullptr) {
  DatasetReader reader(dir);
  std::vector<Image> images;
  for (int64_t i = 0; i < reader.count(); ++i) {
    Image img;
    img.height = reader.shape().height;
    img.width = reader.shape().width;
    img.channels = reader.shape().channels;
    img.pixels.resize(static_cast<size_t>(reader.shape().bytes()));
    reader.read(i, img.pixels.data());
    images.push_back(img);
    if (labels) labels->push_back(reader.label(i));
  }
  return images;
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') names.insert(e->d_name);
  }
  closedir(d);
  return names;
}

Image decode_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size());
}

}  // namespace

BOOST_AUTO_TEST_CASE(cifar10_tarball_round_trip) {
  TempDir dir;
  make_dirs(dir / "cifar-10-batches-bin");
  std::vector<Image> images;
  std::vector<uint8_t> labels;
  for (int i = 0; i < 10000; ++i) {
    images.push_back(pattern_image(32, 32, 3, static_cast<uint32_t>(i), i % 2 == 0));
    labels.push_back(static_cast<uint8_t>(i * 7 % 10));
  }
  write_cifar_batch(dir / "cifar-10-batches-bin/test_batch.bin", images, labels);
  write_file(dir / "cifar-10-batches-bin/batches.meta.txt", {'x', '\n'});
  BOOST_REQUIRE(run_command("tar -C " + dir.path() + " -czf " + (dir / "cifar.tar.gz") + " cifar-10-batches-bin") == 0);

  auto source = open_cifar10(dir / "cifar.tar.gz", Split::kTest);
  const Run run = prepare(*source, dir / "out", [](PrepareOptions& o) { o.num_shards = 3; });
  BOOST_TEST(run.report.manifest.count == 10000);
  BOOST_TEST(run.report.skipped == 0);
  std::vector<int32_t> got_labels;
  const std::vector<Image> got = read_all(dir / "out", &got_labels);
  BOOST_REQUIRE(got.size() == images.size());
  for (size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST((got[i].pixels == images[i].pixels), "image " << i);
    BOOST_TEST(got_labels[i] == labels[i]);
  }
  // The train split is not in this tarball: a clear error.
  const std::string e = input_error_of([&] { open_cifar10(dir / "cifar.tar.gz", Split::kTrain); });
  BOOST_TEST(e.find("data_batch_1.bin") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cifar10_folder_reads_batches_in_order) {
  TempDir dir;
  for (int b = 1; b <= 5; ++b) {
    std::vector<Image> images;
    std::vector<uint8_t> labels;
    for (int r = 0; r < 10000; ++r) {
      images.push_back(pattern_image(32, 32, 3, static_cast<uint32_t>(b * 10000 + r)));
      labels.push_back(static_cast<uint8_t>(b));
    }
    write_cifar_batch(dir / cat("data_batch_", b, ".bin"), images, labels);
  }
  auto source = open_cifar10(dir.path(), Split::kTrain);
  BOOST_TEST(source->size() == 50000);
  // Across the boundary of the first two batch files.
  const Run run = prepare(*source, dir / "out", [](PrepareOptions& o) { o.limit = 10005; });
  std::vector<int32_t> labels;
  const std::vector<Image> got = read_all(dir / "out", &labels);
  BOOST_REQUIRE(got.size() == 10005u);
  for (int i : {0, 9999, 10000, 10004}) {
    const int b = 1 + i / 10000, r = i % 10000;
    BOOST_TEST((got[static_cast<size_t>(i)].pixels == pattern_image(32, 32, 3, static_cast<uint32_t>(b * 10000 + r)).pixels));
    BOOST_TEST(labels[static_cast<size_t>(i)] == b);
  }
  // A batch file of the wrong size (e.g. the Python version) is named.
  write_file(dir / "data_batch_1.bin", std::vector<uint8_t>(1000, 0));
  auto bad = open_cifar10(dir.path(), Split::kTrain);
  const std::string e = input_error_of([&] { prepare(*bad, dir / "out2"); });
  BOOST_TEST(e.find("data_batch_1.bin") != std::string::npos);
  BOOST_TEST(e.find("30730000") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(folder_round_trip_png_and_jpeg_recursive) {
  TempDir dir;
  const std::string src = dir / "src";
  make_dirs(src + "/a/b");
  const Image p1 = pattern_image(24, 24, 3, 1), j2 = pattern_image(24, 24, 3, 2, true), p3 = pattern_image(24, 24, 3, 3);
  write_file(src + "/a/1.png", encode_png(p1));
  write_file(src + "/a/b/2.jpg", encode_jpeg(j2));
  write_file(src + "/c.JPEG", encode_jpeg(pattern_image(24, 24, 3, 4, true)));
  write_file(src + "/d.png", encode_png(p3));
  write_file(src + "/notes.txt", {'h', 'i'});
  write_file(src + "/.hidden.png", encode_png(p1));

  auto source = open_folder(src);
  BOOST_TEST(source->size() == 4);
  const Run run = prepare(*source, dir / "out");
  BOOST_TEST(shape_string(run.report.manifest.shape) == "24x24x3");
  BOOST_TEST(!run.report.manifest.has_labels);
  const std::vector<Image> got = read_all(dir / "out");
  BOOST_REQUIRE(got.size() == 4u);
  // Order: a/1.png, a/b/2.jpg, c.JPEG, d.png.
  BOOST_TEST((got[0].pixels == p1.pixels));
  BOOST_TEST((got[1].pixels == decode_file(src + "/a/b/2.jpg").pixels));
  BOOST_TEST((got[2].pixels == decode_file(src + "/c.JPEG").pixels));
  BOOST_TEST((got[3].pixels == p3.pixels));
}

BOOST_AUTO_TEST_CASE(folder_channels_grey_rgb_and_mixed) {
  TempDir dir;
  make_dirs(dir / "grey");
  const Image g1 = pattern_image(16, 16, 1, 1), g2 = pattern_image(16, 16, 1, 2, true);
  write_file(dir / "grey/1.png", encode_png(g1));
  write_file(dir / "grey/2.jpg", encode_jpeg(g2));
  auto grey = open_folder(dir / "grey");
  const Run r1 = prepare(*grey, dir / "out1");
  BOOST_TEST(r1.report.manifest.shape.channels == 1);
  BOOST_TEST((read_all(dir / "out1")[0].pixels == g1.pixels));

  auto grey_again = open_folder(dir / "grey");
  const Run r2 = prepare(*grey_again, dir / "out2", [](PrepareOptions& o) { o.force_rgb = true; });
  BOOST_TEST(r2.report.manifest.shape.channels == 3);
  BOOST_TEST((read_all(dir / "out2")[0].pixels == convert_channels(g1, 3).pixels));

  write_file(dir / "grey/3.png", encode_png(pattern_image(16, 16, 3, 3)));  // now mixed
  auto mixed = open_folder(dir / "grey");
  const Run r3 = prepare(*mixed, dir / "out3");
  BOOST_TEST(r3.report.manifest.shape.channels == 3);
  BOOST_TEST((read_all(dir / "out3")[0].pixels == convert_channels(g1, 3).pixels));
}

BOOST_AUTO_TEST_CASE(undecodable_images_are_named_and_skipped_or_fatal_with_strict) {
  TempDir dir;
  make_dirs(dir / "src");
  for (int i = 0; i < 5; ++i) write_file(dir / cat("src/", i, ".png"), encode_png(pattern_image(8, 8, 3, i)));
  write_file(dir / "src/2.png", {'n', 'o', 't', ' ', 'p', 'n', 'g'});
  std::vector<uint8_t> cut = encode_jpeg(pattern_image(8, 8, 3, 9, true));
  cut.resize(cut.size() - 40);
  write_file(dir / "src/5.jpg", cut);
  write_file(dir / "src/6.png", encode_png(pattern_image(9, 8, 3, 6)));  // another size

  auto source = open_folder(dir / "src");
  const Run run = prepare(*source, dir / "out");
  BOOST_TEST(run.report.skipped == 3);
  BOOST_TEST(run.report.manifest.count == 4);
  BOOST_REQUIRE(run.skipped.size() == 3u);
  BOOST_TEST(run.skipped[0].find(dir / "src/2.png") == 0u);
  BOOST_TEST(run.skipped[1].find(dir / "src/5.jpg") == 0u);
  BOOST_TEST(run.skipped[1].find("corrupt JPEG") != std::string::npos);
  BOOST_TEST(run.skipped[2].find("use --resolution") != std::string::npos);
  const std::vector<Image> got = read_all(dir / "out");
  BOOST_TEST((got[2].pixels == pattern_image(8, 8, 3, 3).pixels));  // 2.png left out

  auto strict_source = open_folder(dir / "src");
  const std::string e = input_error_of([&] { prepare(*strict_source, dir / "out", [](PrepareOptions& o) { o.strict = true; }); });
  BOOST_TEST(e.find(dir / "src/2.png") == 0u);
  BOOST_TEST(e.find("--strict") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_shard_whose_images_all_fail_is_empty_and_readable) {
  TempDir dir;
  make_dirs(dir / "src");
  for (int i = 0; i < 8; ++i) write_file(dir / cat("src/", i, ".png"), encode_png(pattern_image(6, 6, 3, i)));
  write_file(dir / "src/2.png", {'x'});
  write_file(dir / "src/3.png", {'y'});
  auto source = open_folder(dir / "src");
  const Run run = prepare(*source, dir / "out", [](PrepareOptions& o) { o.num_shards = 4; });
  BOOST_REQUIRE(run.report.manifest.shards.size() == 4u);
  BOOST_TEST(run.report.manifest.shards[1].count == 0);
  const std::vector<Image> got = read_all(dir / "out");
  BOOST_REQUIRE(got.size() == 6u);
  BOOST_TEST((got[2].pixels == pattern_image(6, 6, 3, 4).pixels));  // the first image after the empty shard
}

BOOST_AUTO_TEST_CASE(resolution_crops_and_resamples) {
  TempDir dir;
  make_dirs(dir / "src");
  const Image wide = pattern_image(24, 40, 3, 1), tall = pattern_image(50, 30, 3, 2);
  write_file(dir / "src/a.png", encode_png(wide));
  write_file(dir / "src/b.png", encode_png(tall));
  auto source = open_folder(dir / "src");
  const Run run = prepare(*source, dir / "out", [](PrepareOptions& o) { o.resolution = 16; });
  BOOST_TEST(shape_string(run.report.manifest.shape) == "16x16x3");
  const std::vector<Image> got = read_all(dir / "out");
  BOOST_TEST((got[0].pixels == center_crop_resize(wide, 16).pixels));
  BOOST_TEST((got[1].pixels == center_crop_resize(tall, 16).pixels));
}

BOOST_AUTO_TEST_CASE(lsun_lmdb_round_trip_webp_and_jpeg) {
  TempDir dir;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> entries;
  std::vector<Image> webp_images;
  for (int i = 0; i < 4; ++i) webp_images.push_back(pattern_image(20, 20, 3, static_cast<uint32_t>(i)));
  entries.push_back({"c3", encode_webp_lossless(webp_images[2])});
  entries.push_back({"a1", encode_webp_lossless(webp_images[0])});
  entries.push_back({"b2", encode_jpeg(pattern_image(20, 20, 3, 8, true))});
  entries.push_back({"d4", {1, 2, 3, 4}});  // not an image
  entries.push_back({"e5", encode_jpeg(pattern_image(20, 20, 1, 9, true))});  // grey: replicated
  write_lmdb(dir / "church_lmdb", entries);

  auto source = open_lsun(dir / "church_lmdb");
  BOOST_TEST(source->size() == 5);
  const Run run = prepare(*source, dir / "out");
  BOOST_TEST(run.report.skipped == 1);
  BOOST_REQUIRE(run.skipped.size() == 1u);
  BOOST_TEST(run.skipped[0].find("church_lmdb:d4") == 0u);
  const std::vector<Image> got = read_all(dir / "out");
  BOOST_REQUIRE(got.size() == 4u);  // key order: a1, b2, c3, e5
  BOOST_TEST((got[0].pixels == webp_images[0].pixels));
  BOOST_TEST((got[1].pixels == decode_image(entries[2].second.data(), entries[2].second.size()).pixels));
  BOOST_TEST((got[2].pixels == webp_images[2].pixels));
  BOOST_TEST((got[3].pixels == convert_channels(decode_image(entries[4].second.data(), entries[4].second.size()), 3).pixels));

  make_dirs(dir / "not_lmdb");
  write_file(dir / "not_lmdb/data.mdb", std::vector<uint8_t>(8192, 0x5A));
  BOOST_TEST(input_error_of([&] { open_lsun(dir / "not_lmdb"); }).find("not a readable LMDB") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(mnist_idx_round_trip_gz_and_plain) {
  TempDir dir;
  std::vector<Image> images;
  std::vector<uint8_t> labels;
  for (int i = 0; i < 100; ++i) {
    images.push_back(pattern_image(28, 28, 1, static_cast<uint32_t>(i)));
    labels.push_back(static_cast<uint8_t>(i % 10));
  }
  make_dirs(dir / "gz");
  write_idx_images(dir / "gz/train-images-idx3-ubyte.gz", images);
  write_idx_labels(dir / "gz/train-labels-idx1-ubyte.gz", labels);
  make_dirs(dir / "plain");
  write_idx_images(dir / "plain/t10k-images-idx3-ubyte", images);

  auto gz = open_mnist(dir / "gz", Split::kTrain);
  const Run run = prepare(*gz, dir / "out1", [](PrepareOptions& o) { o.shard_size = 30, o.num_shards = 0; });
  BOOST_TEST(run.report.manifest.shards.size() == 4u);
  BOOST_TEST(shape_string(run.report.manifest.shape) == "28x28x1");
  std::vector<int32_t> got_labels;
  const std::vector<Image> got = read_all(dir / "out1", &got_labels);
  BOOST_REQUIRE(got.size() == 100u);
  for (size_t i = 0; i < 100; ++i) {
    BOOST_TEST((got[i].pixels == images[i].pixels));
    BOOST_TEST(got_labels[i] == labels[i]);
  }

  auto plain = open_mnist(dir / "plain", Split::kTest);
  BOOST_TEST(!plain->has_labels());
  const Run rgb = prepare(*plain, dir / "out2", [](PrepareOptions& o) { o.force_rgb = true; o.resolution = 32; });
  BOOST_TEST(shape_string(rgb.report.manifest.shape) == "32x32x3");
  BOOST_TEST((read_all(dir / "out2")[5].pixels == center_crop_resize(convert_channels(images[5], 3), 32).pixels));

  write_idx_labels(dir / "plain/t10k-labels-idx1-ubyte", std::vector<uint8_t>(99, 0));
  BOOST_TEST(input_error_of([&] { open_mnist(dir / "plain", Split::kTest); }).find("99 labels for 100 images") != std::string::npos);
  write_file(dir / "plain/t10k-images-idx3-ubyte", {0, 0, 8, 1, 0, 0, 0, 0});
  BOOST_TEST(input_error_of([&] { open_mnist(dir / "plain", Split::kTest); }).find("bad magic") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(shards_hold_the_documented_layout) {
  TempDir dir;
  const Manifest m = write_synthetic_dataset(dir / "ds", 10, {6, 5, 3}, 3);
  BOOST_TEST(m.shards.size() == 3u);
  BOOST_TEST(m.shards[0].count == 3);
  BOOST_TEST(m.shards[2].count == 4);
  BOOST_TEST((entries(dir / "ds") == std::set<std::string>{"manifest", "shard-00000-of-00003.h5",
                                                            "shard-00001-of-00003.h5", "shard-00002-of-00003.h5"}));
  BOOST_TEST((Manifest::read_dir(dir / "ds").to_yaml() == m.to_yaml()));
  const h5::File f = h5::File::open_read(dir / "ds/shard-00002-of-00003.h5");
  BOOST_TEST(f.read_attr_str("/", "format") == "ddpm-shard");
  BOOST_TEST(f.read_attr_i64("/", "version") == 1);
  BOOST_TEST(f.read_attr_i64("/", "count") == 4);
  BOOST_TEST(f.read_attr_i64("/", "shard_index") == 2);
  BOOST_TEST(f.read_attr_i64("/", "num_shards") == 3);
  BOOST_TEST(f.read_attr_i64("/", "checksum") == m.shards[2].checksum);
  const h5::DatasetInfo images = f.info("images");
  BOOST_TEST((images.dtype == h5::DType::kUInt8));
  BOOST_TEST((images.shape == std::vector<int64_t>{4, 6, 5, 3}));
  h5::Lock lock;
  h5::Handle ds = f.open_dataset("images");
  h5::Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  hsize_t chunk[4];
  BOOST_TEST(H5Pget_chunk(dcpl.get(), 4, chunk) == 4);
  BOOST_TEST((std::vector<hsize_t>(chunk, chunk + 4) == std::vector<hsize_t>{1, 6, 5, 3}));
}

BOOST_AUTO_TEST_CASE(rerun_replaces_the_dataset_whole_and_failures_keep_the_old_one) {
  TempDir dir;
  const std::string out = dir / "ds";
  write_synthetic_dataset(out, 20, {4, 4, 3}, 4);
  make_dirs(dir / "src");
  for (int i = 0; i < 6; ++i) write_file(dir / cat("src/", i, ".png"), encode_png(pattern_image(4, 4, 3, 100 + i)));
  auto source = open_folder(dir / "src");
  prepare(*source, out);  // 2 shards replace 4
  BOOST_TEST((entries(out) == std::set<std::string>{"manifest", "shard-00000-of-00002.h5", "shard-00001-of-00002.h5"}));
  BOOST_TEST(read_all(out).size() == 6u);
  BOOST_TEST(!fs::exists(out + ".partial"));

  // A failing run (--strict meets a bad file) leaves the dataset as it was.
  const std::string before = fs::read_text(out + "/manifest");
  write_file(dir / "src/3.png", {'x'});
  auto bad = open_folder(dir / "src");
  BOOST_TEST(input_error_of([&] { prepare(*bad, out, [](PrepareOptions& o) { o.strict = true; o.num_shards = 3; }); }) != "");
  BOOST_TEST(fs::read_text(out + "/manifest") == before);
  BOOST_TEST(entries(out).size() == 3u);
  BOOST_TEST(!fs::exists(out + ".partial"));

  // A folder that is not a dataset is never replaced; a stale staging folder is cleared.
  make_dirs(dir / "mine");
  write_file(dir / "mine/thesis.tex", {'%'});
  auto again = open_folder(dir / "src");
  BOOST_TEST(input_error_of([&] { prepare(*again, dir / "mine"); }).find("thesis.tex") != std::string::npos);
  BOOST_TEST(fs::exists(dir / "mine/thesis.tex"));
  make_dirs(dir / "fresh.partial");
  write_file(dir / "fresh.partial/shard-00000-of-00002.h5", {1});
  auto third = open_folder(dir / "src");
  prepare(*third, dir / "fresh");
  BOOST_TEST(read_all(dir / "fresh").size() == 5u);  // 3.png is skipped without --strict
  BOOST_TEST(!fs::exists(dir / "fresh.partial"));
}

BOOST_AUTO_TEST_CASE(output_does_not_depend_on_the_thread_count) {
  TempDir dir;
  make_dirs(dir / "src");
  for (int i = 0; i < 40; ++i) {
    write_file(dir / cat("src/", 100 + i, ".jpg"), encode_jpeg(pattern_image(30 + i % 3, 26, 3, i, true)));
  }
  Manifest by_threads[2];
  for (int t : {0, 1}) {
    auto source = open_folder(dir / "src");
    by_threads[t] = prepare(*source, dir / cat("out", t), [t](PrepareOptions& o) {
                      o.threads = t == 0 ? 1 : 3;
                      o.resolution = 20;
                    }).report.manifest;
  }
  BOOST_TEST(by_threads[0].count == 40);
  BOOST_TEST(by_threads[0].fingerprint() == by_threads[1].fingerprint());
}
