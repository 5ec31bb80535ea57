// .npz files both ways: every array numpy wrote (np.savez, np.savez_compressed, zip64
// records, data descriptors, npy 1.0/2.0/3.0; make_eval_reference.py) reads back with
// its dtype, shape and exact bytes, whole or row by row; what ddpm writes, numpy reads
// back exactly; damaged and unsupported files are one-line InputErrors, whatever byte
// is cut or flipped; writing never replaces a file unless asked.
#define BOOST_TEST_MODULE eval_npz
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "core/common.h"
#include "core/fs.h"
#include "io/npz.h"
#include "eval_test_util.h"

using namespace ddpm;
using ddpm::testing::input_error_of;
using ddpm::testing::reference_path;

namespace {

struct Case {
  std::string file, array, descr, raw;
  std::vector<int64_t> shape;
};

// cases.txt: "file array descr shape raw", the shape comma-separated ("-" for a scalar).
std::vector<Case> numpy_cases() {
  std::ifstream in(reference_path("npz", "cases.txt"));
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Case c;
    std::string shape;
    fields >> c.file >> c.array >> c.descr >> shape >> c.raw;
    std::istringstream dims(shape == "-" ? "" : shape);
    for (std::string d; std::getline(dims, d, ',');) c.shape.push_back(std::stoll(d));
    cases.push_back(c);
  }
  return cases;
}

std::vector<uint8_t> file_bytes(const std::string& path) { return ddpm::testing::read_file(path); }

// Reads every array of the file (the way a caller that trusts nothing would).
void read_everything(const std::string& path) {
  const NpzReader npz(path);
  for (const std::string& name : npz.names()) {
    const NpyArray a = npz.read(name);
    if (a.dtype != NpyDType::kUnicode) a.to_doubles();
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(reads_every_array_numpy_wrote_exactly) {
  const std::vector<Case> cases = numpy_cases();
  BOOST_REQUIRE_GE(cases.size(), 100u);
  std::map<std::string, std::unique_ptr<NpzReader>> readers;
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.file << " " << c.array) {
      auto& reader = readers[c.file];
      if (!reader) reader = std::make_unique<NpzReader>(reference_path("npz", c.file));
      const NpyArray a = reader->read(c.array);
      BOOST_TEST(element_descr(a.dtype, a.item_bytes) == c.descr);
      BOOST_TEST(a.shape == c.shape, boost::test_tools::per_element());
      const std::vector<uint8_t> raw = file_bytes(reference_path("npz", c.raw));
      BOOST_TEST(a.bytes == raw, boost::test_tools::per_element());
      const NpyHeader h = reader->header(c.array);
      BOOST_TEST(element_descr(h.dtype, h.item_bytes) == c.descr);
      BOOST_TEST(h.shape == c.shape, boost::test_tools::per_element());
    }
  }
  // np.savez's positional arrays are arr_0, arr_1, ... (after the named ones); names come
  // without ".npy", in the archive's order.
  const std::vector<std::string> names = readers.at("stored.npz")->names();
  BOOST_TEST(names.front() == "images");
  BOOST_TEST(names.back() == "arr_0");
  BOOST_TEST(names.size() == 19u);
}

BOOST_AUTO_TEST_CASE(rows_stream_as_the_whole_array_reads) {
  const NpzReader npz(reference_path("npz", "compressed.npz"));
  for (const std::string name : {"smooth", "images", "rank5", "scalar", "empty"}) {
    BOOST_TEST_CONTEXT(name) {
      const NpyArray whole = npz.read(name);
      NpyRowReader rows = npz.rows(name);
      BOOST_TEST(rows.rows() == (whole.shape.empty() ? 1 : whole.shape[0]));
      std::vector<uint8_t> streamed;
      for (;;) {
        std::vector<uint8_t> chunk(7 * rows.row_bytes());
        const int64_t n = rows.read(7, chunk.data());
        if (n == 0) break;
        streamed.insert(streamed.end(), chunk.begin(), chunk.begin() + static_cast<int64_t>(n * rows.row_bytes()));
      }
      BOOST_TEST(rows.rows_left() == 0);
      BOOST_TEST(streamed == whole.bytes, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(conversions_give_the_values) {
  const NpzReader npz(reference_path("npz", "stored.npz"));
  const NpyArray labels = npz.read("labels");
  std::vector<int64_t> raw(8);
  std::memcpy(raw.data(), labels.bytes.data(), 64);
  const std::vector<double> as_doubles = labels.to_doubles();
  for (size_t i = 0; i < raw.size(); ++i) BOOST_TEST(as_doubles[i] == static_cast<double>(raw[i]));
  BOOST_TEST(npz.read("ints_i1").to_doubles() == (std::vector<double>{-128, -1, 0, 127}), boost::test_tools::per_element());
  BOOST_TEST(npz.read("ints_u4").to_doubles() == (std::vector<double>{0, 1, 0, 4294967295.0}),
             boost::test_tools::per_element());
  BOOST_TEST(npz.read("ints_u8").to_doubles().back() == 18446744073709551615.0);
  const std::vector<double> flags = npz.read("flags").to_doubles();
  BOOST_TEST(flags == (std::vector<double>{1, 0, 1, 1, 0, 0}), boost::test_tools::per_element());
  const std::vector<float> images = npz.read("images").to_floats();
  const NpyArray bytes = npz.read("images");
  for (size_t i = 0; i < images.size(); ++i) BOOST_TEST(images[i] == static_cast<float>(bytes.bytes[i]));
  BOOST_TEST(npz.read("scalar").to_doubles() == std::vector<double>{3.141592653589793}, boost::test_tools::per_element());
  // A float array is read as such; any other dtype or rank is refused by name.
  BOOST_TEST(npz.read_floating("matrix", 2).shape == (std::vector<int64_t>{3, 5}), boost::test_tools::per_element());
  BOOST_TEST(input_error_of([&] { npz.read_floating("labels", 2); }).find("'labels' is '<i8'") != std::string::npos);
  BOOST_TEST(input_error_of([&] { npz.read_floating("vector", 2); }).find("not 2 dimension") != std::string::npos);
  // Strings (UTF-32 in the file, UTF-8 here) and integer scalars, and nothing else as such.
  BOOST_TEST(npz.read_text("text") == "r\u00e9sum\u00e9 \u2713 \U0001D11E");
  BOOST_TEST(npz.read_integer("count") == -7);
  BOOST_TEST(input_error_of([&] { npz.read_text("scalar"); }).find("not a string") != std::string::npos);
  BOOST_TEST(input_error_of([&] { npz.read_integer("scalar"); }).find("not an integer") != std::string::npos);
  BOOST_TEST(input_error_of([&] { npz.read_integer("labels"); }).find("not an integer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(numpy_reads_what_ddpm_writes_exactly) {
  const std::string ours = ddpm::testing::fresh_ours_dir("npz");
  int files = 0;
  for (const std::string file : {"stored.npz", "compressed.npz", "zip64.npz", "version2.npz", "small.npz"}) {
    const NpzReader npz(reference_path("npz", file));
    std::vector<NpyArray> arrays;
    std::vector<std::pair<std::string, NpyView>> views;
    for (const std::string& name : npz.names()) arrays.push_back(npz.read(name));
    for (size_t i = 0; i < arrays.size(); ++i) views.emplace_back(npz.names()[i], NpyView::of(arrays[i]));
    write_npz(ours + "/" + file, views);
    // And ddpm reads its own file back the same.
    const NpzReader again(ours + "/" + file);
    for (size_t i = 0; i < arrays.size(); ++i) {
      BOOST_TEST(again.read(npz.names()[i]).bytes == arrays[i].bytes, boost::test_tools::per_element());
    }
    ++files;
  }
  BOOST_TEST(files == 5);
  BOOST_TEST(ddpm::testing::numpy_check_written("npz") == 0);
}

BOOST_AUTO_TEST_CASE(writing_refuses_an_existing_file_unless_asked) {
  const ddpm::testing::TempDir tmp;
  const std::string path = tmp / "stats.npz";
  const std::vector<double> first = {1, 2, 3}, second = {4, 5};
  write_npz(path, {{"x", NpyView::of(first, {3})}});
  const std::vector<uint8_t> before = file_bytes(path);
  const std::string error = input_error_of([&] { write_npz(path, {{"x", NpyView::of(second, {2})}}); });
  BOOST_TEST(error == path + ": exists (refusing to overwrite it)");
  BOOST_TEST(file_bytes(path) == before, boost::test_tools::per_element());
  BOOST_TEST(!fs::exists(path + ".tmp"));
  write_npz(path, {{"x", NpyView::of(second, {2})}}, Overwrite::kReplace);
  BOOST_TEST(NpzReader(path).read("x").to_doubles() == second, boost::test_tools::per_element());
  BOOST_TEST(!fs::exists(path + ".tmp"));
  // A file that appears while ours is written is not replaced either.
  const std::string raced = tmp / "raced.npz";
  BOOST_TEST(input_error_of([&] {
               fs::write_atomically(
                   raced,
                   [&](const std::string& ours) {
                     ddpm::testing::write_file(ours, {1, 2, 3});
                     ddpm::testing::write_file(raced, {9});
                   },
                   fs::Overwrite::kRefuse);
             }) == raced + ": exists (refusing to overwrite it)");
  BOOST_TEST(file_bytes(raced) == std::vector<uint8_t>{9}, boost::test_tools::per_element());
  BOOST_TEST(!fs::exists(raced + ".tmp"));
  // Nothing is left behind when the directory cannot take the file.
  BOOST_TEST(input_error_of([&] { write_npz(tmp / "missing/dir/x.npz", {{"x", NpyView::of(first, {3})}}); })
                 .find("cannot write the archive (libzip: Failure to create temporary file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hostile_files_fail_with_one_clear_line) {
  std::ifstream in(reference_path("npz", "hostile.txt"));
  int cases = 0;
  for (std::string line; std::getline(in, line); ++cases) {
    const size_t tab = line.find('\t');
    const std::string file = line.substr(0, tab), words = line.substr(tab + 1);
    const std::string path = reference_path("npz/hostile", file);
    const std::string error = input_error_of([&] { read_everything(path); });
    BOOST_TEST_MESSAGE(error);
    BOOST_TEST_CONTEXT(file << ": " << error) {
      BOOST_TEST(error.rfind(path + ": ", 0) == 0);  // names the file first
      BOOST_TEST(error.find(words) != std::string::npos);
      BOOST_TEST(error.find('\n') == std::string::npos);
    }
  }
  BOOST_TEST(cases >= 25);
  const NpzReader npz(reference_path("npz", "small.npz"));
  BOOST_TEST(input_error_of([&] { npz.read("nope"); }) ==
             reference_path("npz", "small.npz") + ": has no array 'nope' (it has 'a', 'b')");
}

BOOST_AUTO_TEST_CASE(every_cut_and_every_flipped_byte_is_clean) {
  const std::vector<uint8_t> good = file_bytes(reference_path("npz", "small.npz"));
  const ddpm::testing::TempDir tmp;
  const std::string path = tmp / "damaged.npz";
  // Every proper prefix loses the end record: always an InputError.
  for (size_t size = 0; size < good.size(); ++size) {
    ddpm::testing::write_file(path, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<int64_t>(size)));
    BOOST_TEST_CONTEXT("cut to " << size) { BOOST_TEST(!input_error_of([&] { read_everything(path); }).empty()); }
  }
  // A flipped byte is caught (CRC, sizes, signatures) or harmless (a date, a version, a
  // local header's copy of the sizes, which the directory's values overrule); nothing
  // else may happen. Most flips must be caught (measured: 353 of 466).
  size_t caught = 0;
  for (size_t at = 0; at < good.size(); ++at) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x5a;
    ddpm::testing::write_file(path, bad);
    caught += !input_error_of([&] { read_everything(path); }).empty();
  }
  BOOST_TEST_MESSAGE("flipped bytes caught: " << caught << " of " << good.size());
  BOOST_TEST(caught > good.size() * 2 / 3);
}
