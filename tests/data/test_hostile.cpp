// Hostile and damaged datasets: every one gives one clear InputError naming the file
// (and the image), before anything is allocated from its claims.
#define BOOST_TEST_MODULE data_hostile
#include <boost/test/unit_test.hpp>

#include <H5PLpublic.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/h5.h"
#include "data/checksum.h"
#include "data/loader.h"
#include "data/shard_reader.h"
#include "fixtures.h"

using namespace ddpm;
using namespace ddpm::data;
using namespace ddpm::testing;

namespace {

const ImageShape kShape{4, 5, 3};
constexpr int64_t kCount = 6;

// How a hand-written shard departs from the format.
struct Mutation {
  bool deflate = false;           // images compressed (a filter)
  bool plugin_filter = false;     // images through a filter only a plugin provides
  bool external_storage = false;  // images kept in a raw file next to the shard
  bool external_link = false;     // images is a link into another file
  bool float_images = false;
  bool contiguous = false;        // not one image per chunk
  int64_t version = 1;
  int64_t count_attr = kCount;
  bool old_format = false;        // HDF5's default format: metadata without checksums
  bool variable_strings = false;  // string attributes in the global heap
};

using h5::Lock;

// Rewrites DIR/shard-00000-of-00001.h5 (the synthetic images 0..5) with a mutation, and
// fixes the manifest's byte count so that the mutation is what the reader meets.
void rewrite_shard(const std::string& dir, const Mutation& m) {
  const std::string path = dir + "/shard-00000-of-00001.h5";
  std::vector<uint8_t> pixels;
  std::vector<uint32_t> checksums;
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < kCount; ++i) {  // what write_synthetic_dataset stored
    const Image img = pattern_image(kShape.height, kShape.width, kShape.channels, static_cast<uint32_t>(i));
    pixels.insert(pixels.end(), img.pixels.begin(), img.pixels.end());
    checksums.push_back(crc32_of(img.pixels.data(), img.pixels.size()));
    labels.push_back(static_cast<int32_t>(i % 10));
  }
  const std::string target = dir + "/other.h5";
  h5::File f = m.old_format ? h5::File::create(path) : h5::File::create_checksummed(m.external_link ? target : path);
  {
    Lock lock;
    const hsize_t dims[4] = {kCount, 4, 5, 3}, chunk[4] = {1, 4, 5, 3};
    h5::Handle space(H5Screate_simple(4, dims, nullptr), H5Sclose);
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (!m.contiguous && !m.external_storage) H5Pset_chunk(dcpl.get(), 4, chunk);
    if (m.deflate) H5Pset_deflate(dcpl.get(), 4);
    if (m.plugin_filter) BOOST_REQUIRE(H5Pset_filter(dcpl.get(), 32001, H5Z_FLAG_OPTIONAL, 0, nullptr) >= 0);
    if (m.external_storage) {
      const std::string raw = dir + "/raw.bin";  // absolute: HDF5 would write relative names into the cwd
      H5Pset_external(dcpl.get(), raw.c_str(), 0, pixels.size());
    }
    h5::Handle ds(H5Dcreate2(f.id(), "images", m.float_images ? H5T_IEEE_F32LE : H5T_STD_U8LE, space.get(),
                             H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                  H5Dclose);
    BOOST_REQUIRE(ds.valid());
    std::vector<float> as_float(pixels.begin(), pixels.end());
    BOOST_REQUIRE(H5Dwrite(ds.get(), m.float_images ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL,
                           H5P_DEFAULT, m.float_images ? static_cast<const void*>(as_float.data()) : pixels.data()) >= 0);
  }
  if (m.external_link) {
    f.close();
    f = h5::File::create_checksummed(path);
    Lock lock;
    H5Lcreate_external("other.h5", "/images", f.id(), "images", H5P_DEFAULT, H5P_DEFAULT);
  }
  {
    Lock lock;
    const hsize_t n[1] = {kCount};
    h5::Handle space(H5Screate_simple(1, n, nullptr), H5Sclose);
    h5::Handle c(H5Dcreate2(f.id(), "checksums", H5T_STD_U32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    H5Dwrite(c.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, checksums.data());
    h5::Handle l(H5Dcreate2(f.id(), "labels", H5T_STD_I32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    H5Dwrite(l.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
  }
  Manifest manifest = Manifest::read_dir(dir);
  if (m.variable_strings) {
    f.write_attr_str("/", "format", "ddpm-shard");
  } else {
    f.write_attr_str_fixed("/", "format", "ddpm-shard");
  }
  f.write_attr_i64("/", "version", m.version);
  f.write_attr_i64("/", "height", kShape.height);
  f.write_attr_i64("/", "width", kShape.width);
  f.write_attr_i64("/", "channels", kShape.channels);
  f.write_attr_i64("/", "count", m.count_attr);
  f.write_attr_i64("/", "shard_index", 0);
  f.write_attr_i64("/", "num_shards", 1);
  f.write_attr_str_fixed("/", "source", "hostile");
  f.write_attr_i64("/", "checksum", manifest.shards[0].checksum);
  f.close();
  struct stat st;
  stat(path.c_str(), &st);
  manifest.shards[0].bytes = st.st_size;
  fs::write_text_atomic(dir + "/manifest", manifest.to_yaml());
}

std::string open_error(const std::string& dir) {
  return input_error_of([&] { DatasetReader reader(dir); });
}

LoaderOptions options(const std::string& dir, int prefetch) {
  LoaderOptions o;
  o.path = dir;
  o.global_batch = static_cast<int>(kCount);
  o.prefetch_batches = prefetch;
  return o;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The error opening dir/ds after its shard was rewritten with the mutation `change` sets.
template <typename Change>
std::string error_after(const std::string& ds, Change change) {
  Mutation m;
  change(m);
  rewrite_shard(ds, m);
  return open_error(ds);
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_unmodified_rewrite_is_accepted) {
  // The rewriting helper itself produces a valid shard: the failures below are the mutations'.
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  rewrite_shard(dir / "ds", Mutation{});
  BOOST_TEST(open_error(dir / "ds") == "");
  Loader loader(options(dir / "ds", 0));
  BOOST_TEST(loader.next().n == kCount);
}

BOOST_AUTO_TEST_CASE(filters_and_plugins_are_refused) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.deflate = true; }), "uses an HDF5 filter"));
  const std::string e = error_after(dir / "ds", [](Mutation& m) { m.plugin_filter = true; });
  BOOST_TEST(contains(e, "shard-00000-of-00001.h5: "));
  BOOST_TEST(contains(e, "uses an HDF5 filter"));
  unsigned state = 1;
  H5PLget_loading_state(&state);
  BOOST_TEST(state == 0u);  // plugin loading stays off
}

BOOST_AUTO_TEST_CASE(external_links_and_external_storage_are_refused) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.external_link = true; }),
                      "'images' is a soft or external link, which is refused"));
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.external_storage = true; }),
                      "'images' uses external storage, which is refused"));
}

BOOST_AUTO_TEST_CASE(wrong_type_layout_version_and_counts_are_named) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.float_images = true; }), "'images' is not uint8"));
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.contiguous = true; }),
                      "not stored one image per chunk"));
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.version = 2; }), "shard version 2 is not supported"));
  // refused by comparison, never allocated
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.count_attr = int64_t{1} << 40; }),
                      "attribute count is 1099511627776, the manifest says 6"));
}

BOOST_AUTO_TEST_CASE(metadata_without_checksums_is_refused) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.old_format = true; }),
                      "HDF5 superblock version 0 has no metadata checksums"));
  BOOST_TEST(contains(error_after(dir / "ds", [](Mutation& m) { m.variable_strings = true; }),
                      "attribute 'format' is not a fixed-length string"));
}

BOOST_AUTO_TEST_CASE(every_flipped_byte_is_an_error_or_harmless) {
  // Bit rot anywhere in a shard: HDF5 checks its metadata checksums, ddpm the images' and
  // tables'. Each flip gives an InputError or, in unused bytes, the exact original pixels.
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  const std::string shard = dir / "ds/shard-00000-of-00001.h5";
  const std::vector<uint8_t> original = read_file(shard);
  std::vector<uint8_t> expected;
  for (int64_t i = 0; i < kCount; ++i) {
    const Image img = pattern_image(kShape.height, kShape.width, kShape.channels, static_cast<uint32_t>(i));
    expected.insert(expected.end(), img.pixels.begin(), img.pixels.end());
  }
  int errors = 0, harmless = 0;
  for (size_t pos = 0; pos < original.size(); ++pos) {
    std::vector<uint8_t> damaged = original;
    damaged[pos] ^= 0x10;
    write_file(shard, damaged);
    std::vector<uint8_t> got(expected.size());
    const std::string e = input_error_of([&] {
      DatasetReader reader(dir / "ds");
      for (int64_t i = 0; i < kCount; ++i) reader.read(i, got.data() + i * kShape.bytes());
    });
    if (!e.empty()) {
      ++errors;
      BOOST_TEST(contains(e, shard), "byte " << pos << ": " << e);
    } else {
      ++harmless;
      BOOST_TEST((got == expected), "byte " << pos << " changed pixels silently");
    }
  }
  BOOST_TEST(errors > harmless);
}

BOOST_AUTO_TEST_CASE(manifest_claims_are_checked_before_allocating) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  const std::string good = fs::read_text(dir / "ds/manifest");
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const size_t at = text.find(from);
    BOOST_REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    fs::write_text_atomic(dir / "ds/manifest", text);
    return open_error(dir / "ds");
  };
  BOOST_TEST(contains(with("height: 4", "height: 100000"), "'height' = 100000 is outside 1..8192"));
  BOOST_TEST(contains(with("count: 6\n", "count: 1099511627776\n"), "'count' = 1099511627776 is outside"));
  BOOST_TEST(contains(with("file: shard-00000-of-00001.h5", "file: ../../etc/passwd"), "expected 'shard-00000-of-00001.h5'"));
  BOOST_TEST(contains(with("version: 1", "version: 9"), "version 9 is not supported"));
  BOOST_TEST(contains(with("format: ddpm-dataset", "format: [oops"), "manifest: not a valid manifest"));
  BOOST_TEST(contains(with("labels: true", "labels: true\nextra: 1"), "unknown key 'extra'"));
  BOOST_TEST(contains(with("count: 6\n", "count: 7\n"), "the shards hold 6 images but count is 7"));
  std::string deep(100000, '[');
  fs::write_text_atomic(dir / "ds/manifest", deep);  // nesting bomb: an error, not a stack overflow
  BOOST_TEST(contains(open_error(dir / "ds"), "manifest: not a valid manifest"));
}

BOOST_AUTO_TEST_CASE(missing_truncated_and_foreign_shards_are_named) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", 20, kShape, 2);
  const std::string shard = dir / "ds/shard-00001-of-00002.h5";
  const std::vector<uint8_t> original = read_file(shard);

  std::rename(shard.c_str(), (shard + ".away").c_str());
  BOOST_TEST(open_error(dir / "ds") == shard + ": missing (the manifest lists it)");
  std::rename((shard + ".away").c_str(), shard.c_str());

  truncate_file(shard, static_cast<int64_t>(original.size()) / 2);
  const std::string e = open_error(dir / "ds");
  BOOST_TEST(contains(e, shard + ": "));
  BOOST_TEST(contains(e, "truncated"));

  // Truncated with a manifest that agrees: HDF5 itself refuses the file.
  Manifest m = Manifest::read_dir(dir / "ds");
  m.shards[1].bytes = static_cast<int64_t>(original.size()) / 2;
  fs::write_text_atomic(dir / "ds/manifest", m.to_yaml());
  BOOST_TEST(contains(open_error(dir / "ds"), shard + ": "));

  std::vector<uint8_t> garbage(original.size(), 0x42);
  write_file(shard, garbage);
  m.shards[1].bytes = static_cast<int64_t>(original.size());
  fs::write_text_atomic(dir / "ds/manifest", m.to_yaml());
  BOOST_TEST(open_error(dir / "ds") == shard + ": not an HDF5 file");
}

BOOST_AUTO_TEST_CASE(a_flipped_image_byte_names_the_shard_and_image) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  const std::string shard = dir / "ds/shard-00000-of-00001.h5";
  flip_byte(shard, image_offset_in_shard(shard, 2) + 7);
  BOOST_TEST(open_error(dir / "ds") == "");  // the tables are intact: caught when read
  const std::string want = shard + ": image 2 (dataset index 2) fails its checksum: the shard is corrupt";
  for (int prefetch : {0, 3}) {
    Loader loader(options(dir / "ds", prefetch));
    BOOST_TEST(input_error_of([&] { loader.next(); }) == want, "prefetch " << prefetch);
    BOOST_TEST(input_error_of([&] { loader.next(); }) == want);  // and again, never a hang
  }
}

BOOST_AUTO_TEST_CASE(a_flipped_checksum_table_is_caught_when_opening) {
  TempDir dir;
  write_synthetic_dataset(dir / "ds", kCount, kShape, 1);
  const std::string shard = dir / "ds/shard-00000-of-00001.h5";
  int64_t offset = 0;
  {
    const h5::File f = h5::File::open_read(shard);
    Lock lock;
    h5::Handle ds = f.open_dataset("checksums");
    offset = static_cast<int64_t>(H5Dget_offset(ds.get()));
  }
  flip_byte(shard, offset + 5);
  BOOST_TEST(open_error(dir / "ds") == shard + ": its checksum and label tables do not match its checksum (corrupt)");
}
