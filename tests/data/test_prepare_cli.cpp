// ddpm_prepare end to end: the exit statuses (0, and 2 with one "ddpm_prepare: error:"
// line naming the file) for imports and for verify on damaged datasets.
#define BOOST_TEST_MODULE data_prepare_cli
#include <boost/test/unit_test.hpp>

#include "core/fs.h"
#include "fixtures.h"

using namespace ddpm;
using namespace ddpm::data;
using namespace ddpm::testing;

namespace {

struct Result {
  int status = -1;
  std::string out, err;
};

Result prepare(const TempDir& dir, const std::string& args) {
  Result r;
  r.status = run_command(std::string(DDPM_PREPARE_BIN) + " " + args + " >" + (dir / "stdout") + " 2>" + (dir / "stderr"));
  r.out = fs::read_text(dir / "stdout");
  r.err = fs::read_text(dir / "stderr");
  return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The one-line error of a bad-input exit.
bool is_one_error_line(const std::string& err) {
  return err.rfind("ddpm_prepare: error: ", 0) == 0 && err.find('\n') == err.size() - 1;
}

void write_mnist(const std::string& dir, int n) {
  std::vector<Image> images;
  std::vector<uint8_t> labels;
  for (int i = 0; i < n; ++i) {
    images.push_back(pattern_image(28, 28, 1, static_cast<uint32_t>(i)));
    labels.push_back(static_cast<uint8_t>(i % 10));
  }
  make_dirs(dir);
  write_idx_images(dir + "/train-images-idx3-ubyte.gz", images);
  write_idx_labels(dir + "/train-labels-idx1-ubyte.gz", labels);
}

}  // namespace

BOOST_AUTO_TEST_CASE(help_and_usage) {
  TempDir dir;
  BOOST_TEST(prepare(dir, "--help").status == 0);
  const Result help = prepare(dir, "folder --help");
  BOOST_TEST(help.status == 0);
  BOOST_TEST(contains(help.out, "--resolution"));
  const Result unknown = prepare(dir, "imagenet");
  BOOST_TEST(unknown.status == 2);
  BOOST_TEST(is_one_error_line(unknown.err));
  BOOST_TEST(prepare(dir, "mnist --src x --out y --shards 0").status == 2);
}

BOOST_AUTO_TEST_CASE(import_then_verify) {
  TempDir dir;
  write_mnist(dir / "mnist", 50);
  const Result r = prepare(dir, "mnist --src " + (dir / "mnist") + " --out " + (dir / "ds") + " --shards 3 --rgb --quiet");
  BOOST_TEST(r.status == 0);
  BOOST_TEST(contains(r.out, "wrote 50 images (28x28x3, with labels) in 3 shards"));
  const Result v = prepare(dir, "verify --quiet --data " + (dir / "ds"));
  BOOST_TEST(v.status == 0);
  BOOST_TEST(contains(v.out, "ok, 50 images of 28x28x3 in 3 shards"));
}

BOOST_AUTO_TEST_CASE(bad_sources_exit_2_and_name_the_file) {
  TempDir dir;
  make_dirs(dir / "src");
  write_file(dir / "src/a.png", encode_png(pattern_image(8, 8, 3, 1)));
  write_file(dir / "src/b.jpg", {0xFF, 0xD8, 0xFF, 0x00});
  const Result lenient = prepare(dir, "folder --src " + (dir / "src") + " --out " + (dir / "ds") + " --shards 1 --quiet");
  BOOST_TEST(lenient.status == 0);
  BOOST_TEST(contains(lenient.err, (dir / "src/b.jpg") + ": corrupt JPEG"));
  BOOST_TEST(contains(lenient.out, "skipped 1 images"));

  const std::string manifest = fs::read_text(dir / "ds/manifest");
  const Result strict = prepare(dir, "folder --strict --src " + (dir / "src") + " --out " + (dir / "ds") + " --shards 1");
  BOOST_TEST(strict.status == 2);
  BOOST_TEST(is_one_error_line(strict.err.substr(strict.err.find("ddpm_prepare: error:"))));
  BOOST_TEST(contains(strict.err, (dir / "src/b.jpg") + ": corrupt JPEG"));
  BOOST_TEST(fs::read_text(dir / "ds/manifest") == manifest);  // the old dataset is untouched

  const Result missing = prepare(dir, "cifar10 --src " + (dir / "nope.tar.gz") + " --out " + (dir / "c"));
  BOOST_TEST(missing.status == 2);
  BOOST_TEST(missing.err == "ddpm_prepare: error: " + (dir / "nope.tar.gz") + ": no such file or directory\n");
}

BOOST_AUTO_TEST_CASE(verify_exits_2_on_a_corrupt_or_incomplete_dataset) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", 12, {6, 6, 3}, 2);
  const std::string shard = dir / "ds/shard-00001-of-00002.h5";
  flip_byte(shard, image_offset_in_shard(shard, 4));
  Result r = prepare(dir, "verify --quiet --data " + (dir / "ds"));
  BOOST_TEST(r.status == 2);
  BOOST_TEST(r.err == "ddpm_prepare: error: " + shard + ": image 4 (dataset index 10) fails its checksum: the shard is corrupt\n");
  BOOST_TEST(prepare(dir, "verify --quick --data " + (dir / "ds")).status == 0);  // tables alone are intact

  std::remove(shard.c_str());
  r = prepare(dir, "verify --quick --data " + (dir / "ds"));
  BOOST_TEST(r.status == 2);
  BOOST_TEST(r.err == "ddpm_prepare: error: " + shard + ": missing (the manifest lists it)\n");

  truncate_file(dir / "ds/shard-00000-of-00002.h5", 100);
  r = prepare(dir, "verify --data " + (dir / "ds"));
  BOOST_TEST(r.status == 2);
  BOOST_TEST(contains(r.err, "shard-00000-of-00002.h5: 100 bytes, the manifest says"));
}
