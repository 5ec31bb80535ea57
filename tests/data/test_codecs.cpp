// Decoding (PNG, JPEG, WebP), channel conversion, flips, centre crop + antialiased
// resize, and the tar reader.
#define BOOST_TEST_MODULE data_codecs
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdlib>

#include "data/checksum.h"
#include "data/decode.h"
#include "data/resize.h"
#include "data/archive_reader.h"
#include "fixtures.h"

using namespace ddpm;
using namespace ddpm::data;
using namespace ddpm::testing;

namespace {

double mean_abs_diff(const Image& a, const Image& b) {
  BOOST_REQUIRE(a.shape() == b.shape());
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / static_cast<double>(a.pixels.size());
}

Image decode(const std::vector<uint8_t>& bytes) { return decode_image(bytes.data(), bytes.size()); }

// An RGB image with few colours (for palette PNGs).
Image few_colours(int h, int w) {
  Image img = pattern_image(h, w, 3, 7);
  for (uint8_t& v : img.pixels) v = static_cast<uint8_t>(v & 0xC0);
  return img;
}

}  // namespace

BOOST_AUTO_TEST_CASE(png_variants_decode_exactly) {
  const Image rgb = pattern_image(13, 17, 3, 1), grey = pattern_image(13, 17, 1, 2);
  BOOST_TEST(decode(encode_png(rgb)).pixels == rgb.pixels);
  const Image g = decode(encode_png(grey));
  BOOST_TEST(g.channels == 1);
  BOOST_TEST(g.pixels == grey.pixels);
  PngOptions alpha;
  alpha.alpha = true;
  BOOST_TEST(decode(encode_png(rgb, alpha)).pixels == rgb.pixels);  // alpha dropped
  const Image ga = decode(encode_png(grey, alpha));
  BOOST_TEST(ga.channels == 1);
  BOOST_TEST(ga.pixels == grey.pixels);
  PngOptions deep;
  deep.bit_depth = 16;
  BOOST_TEST(decode(encode_png(rgb, deep)).pixels == rgb.pixels);  // v * 257 scales back to v
  PngOptions interlaced;
  interlaced.interlace = true;
  BOOST_TEST(decode(encode_png(rgb, interlaced)).pixels == rgb.pixels);
  PngOptions palette;
  palette.palette = true;
  const Image few = few_colours(9, 11);
  const Image p = decode(encode_png(few, palette));
  BOOST_TEST(p.channels == 3);
  BOOST_TEST(p.pixels == few.pixels);
}

BOOST_AUTO_TEST_CASE(jpeg_and_webp_decode) {
  const Image smooth = pattern_image(32, 40, 3, 3, true);
  const Image j = decode(encode_jpeg(smooth, 95));
  BOOST_TEST(j.height == 32);
  BOOST_TEST(j.width == 40);
  BOOST_TEST(mean_abs_diff(j, smooth) < 3.0);
  const Image grey = pattern_image(24, 24, 1, 4, true);
  const Image jg = decode(encode_jpeg(grey, 95));
  BOOST_TEST(jg.channels == 1);
  BOOST_TEST(mean_abs_diff(jg, grey) < 3.0);
  const Image noisy = pattern_image(21, 19, 3, 5);
  BOOST_TEST(decode(encode_webp_lossless(noisy)).pixels == noisy.pixels);
}

BOOST_AUTO_TEST_CASE(probe_agrees_with_decode) {
  const Image rgb = pattern_image(8, 8, 3, 1, true), grey = pattern_image(8, 8, 1, 1, true);
  PngOptions alpha;
  alpha.alpha = true;
  for (const auto& bytes : {encode_png(rgb), encode_png(grey), encode_png(grey, alpha), encode_jpeg(rgb),
                            encode_jpeg(grey), encode_webp_lossless(rgb)}) {
    BOOST_TEST(probe_channels(bytes.data(), bytes.size()) == decode(bytes).channels);
  }
  const std::vector<uint8_t> jpeg = encode_jpeg(rgb);
  BOOST_TEST(probe_channels(jpeg.data(), 4) == 0);  // header cut off: unknown
}

BOOST_AUTO_TEST_CASE(damaged_images_are_input_errors) {
  const Image rgb = pattern_image(32, 32, 3, 1);
  std::vector<uint8_t> png = encode_png(rgb);
  png.resize(png.size() / 2);
  BOOST_TEST(input_error_of([&] { decode(png); }).find("corrupt PNG") != std::string::npos);
  std::vector<uint8_t> jpeg = encode_jpeg(rgb);
  jpeg.resize(jpeg.size() / 2);
  BOOST_TEST(input_error_of([&] { decode(jpeg); }).find("corrupt JPEG") != std::string::npos);
  std::vector<uint8_t> webp = encode_webp_lossless(rgb);
  webp.resize(webp.size() / 2);
  BOOST_TEST(input_error_of([&] { decode(webp); }).find("corrupt WebP") != std::string::npos);
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  BOOST_TEST(input_error_of([&] { decode(text); }).find("not a PNG, JPEG or WebP") != std::string::npos);
  BOOST_TEST(input_error_of([&] { decode(std::vector<uint8_t>{}); }) != "");
}

BOOST_AUTO_TEST_CASE(huge_dimensions_are_refused_before_allocating) {
  // A PNG whose IHDR claims 60000 x 60000 (valid CRC): refused from the header.
  std::vector<uint8_t> png = encode_png(pattern_image(4, 4, 3, 1));
  const uint32_t side = 60000;
  for (int k = 0; k < 2; ++k) {
    for (int b = 0; b < 4; ++b) png[16 + 4 * k + b] = static_cast<uint8_t>(side >> (24 - 8 * b));
  }
  const uint32_t crc = crc32_of(png.data() + 12, 17);  // chunk type + data
  for (int b = 0; b < 4; ++b) png[29 + b] = static_cast<uint8_t>(crc >> (24 - 8 * b));
  BOOST_TEST(input_error_of([&] { decode(png); }).find("larger than the limit") != std::string::npos);

  // A JPEG whose frame header claims 65000 x 65000.
  std::vector<uint8_t> jpeg = encode_jpeg(pattern_image(8, 8, 3, 1, true));
  size_t sof = 2;
  while (!(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) sof += 2 + (size_t{jpeg[sof + 2]} << 8 | jpeg[sof + 3]);
  for (size_t at : {sof + 5, sof + 7}) {
    jpeg[at] = 0xFD;
    jpeg[at + 1] = 0xE8;
  }
  BOOST_TEST(input_error_of([&] { decode(jpeg); }).find("larger than the limit") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(channel_conversion_and_flip) {
  const Image grey = pattern_image(3, 4, 1, 9);
  const Image rgb = convert_channels(grey, 3);
  for (size_t i = 0; i < grey.pixels.size(); ++i) {
    BOOST_TEST(rgb.pixels[3 * i] == grey.pixels[i]);
    BOOST_TEST(rgb.pixels[3 * i + 2] == grey.pixels[i]);
  }
  BOOST_TEST(convert_channels(rgb, 1).pixels == grey.pixels);  // luma of a grey pixel is itself
  Image red;
  red.height = red.width = 1;
  red.channels = 3;
  red.pixels = {255, 0, 0};
  BOOST_TEST(int(convert_channels(red, 1).pixels[0]) == 76);  // 0.299 * 255

  Image img = pattern_image(5, 7, 3, 11);
  const Image original = img;
  flip_horizontal(img.pixels.data(), 5, 7, 3);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 7; ++x) {
      for (int c = 0; c < 3; ++c) BOOST_TEST(img.pixels[(y * 7 + x) * 3 + c] == original.pixels[(y * 7 + 6 - x) * 3 + c]);
    }
  }
  flip_horizontal(img.pixels.data(), 5, 7, 3);
  BOOST_TEST(img.pixels == original.pixels);
  Image g = grey;
  flip_horizontal(g.pixels.data(), 3, 4, 1);
  BOOST_TEST(g.pixels[0] == grey.pixels[3]);
}

BOOST_AUTO_TEST_CASE(resize_crops_the_centre_and_antialiases) {
  const Image same = pattern_image(16, 16, 3, 1);
  BOOST_TEST(center_crop_resize(same, 16).pixels == same.pixels);

  // Short side already the target: a pure centre crop.
  const Image wide = pattern_image(8, 14, 1, 2);
  const Image crop = center_crop_resize(wide, 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) BOOST_TEST(crop.pixels[y * 8 + x] == wide.pixels[y * 14 + x + 3]);
  }

  // A 1-pixel checkerboard halves to flat grey; point sampling would keep 0 or 255.
  Image board;
  board.height = board.width = 64;
  board.channels = 1;
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) board.pixels.push_back((x + y) % 2 ? 255 : 0);
  }
  const Image half = center_crop_resize(board, 32);
  for (int y = 1; y < 31; ++y) {
    for (int x = 1; x < 31; ++x) BOOST_TEST(std::abs(int(half.pixels[y * 32 + x]) - 128) <= 1);
  }

  // Flat stays flat, up or down; a ramp stays monotonic.
  Image flat = pattern_image(30, 50, 3, 0);
  std::fill(flat.pixels.begin(), flat.pixels.end(), 77);
  for (int side : {7, 30, 45}) {
    const Image r = center_crop_resize(flat, side);
    BOOST_TEST(r.height == side);
    BOOST_TEST(r.width == side);
    for (uint8_t v : r.pixels) BOOST_TEST(int(v) == 77);
  }
  Image ramp;
  ramp.height = 40;
  ramp.width = 40;
  ramp.channels = 1;
  for (int y = 0; y < 40; ++y) {
    for (int x = 0; x < 40; ++x) ramp.pixels.push_back(static_cast<uint8_t>(x * 6));
  }
  const Image small = center_crop_resize(ramp, 13);
  for (int x = 1; x < 13; ++x) BOOST_TEST(small.pixels[5 * 13 + x] > small.pixels[5 * 13 + x - 1]);
}

BOOST_AUTO_TEST_CASE(archive_reader_reads_what_tar_and_zip_wrote) {
  TempDir dir;
  make_dirs(dir / "pack/sub");
  const std::vector<uint8_t> a = {1, 2, 3}, b(1000, 7);
  write_file(dir / "pack/a.bin", a);
  write_file(dir / "pack/sub/b.bin", b);
  for (const std::string flags : {"cf", "czf", "zip"}) {
    const std::string archive = dir / ("x." + flags);
    const std::string pack = flags == "zip" ? "cd " + dir.path() + " && python3 -m zipfile -c " + archive + " pack"
                                            : "tar -C " + dir.path() + " -" + flags + " " + archive + " pack";
    BOOST_REQUIRE(run_command(pack) == 0);
    ArchiveReader tar(archive);
    std::string name;
    int64_t size = 0;
    std::map<std::string, std::vector<uint8_t>> files;
    while (tar.next_file(&name, &size)) {
      std::vector<uint8_t> data(static_cast<size_t>(size));
      tar.read(data.data(), size);
      files[name] = data;
    }
    BOOST_TEST(files.size() == 2u);
    BOOST_TEST((files["pack/a.bin"] == a));
    BOOST_TEST((files["pack/sub/b.bin"] == b));
  }
  // Cut inside the second file: a clear error, not a short read.
  const std::string archive = dir / "x.cf";
  truncate_file(archive, 1024 + 512 + 300);
  const std::string e = input_error_of([&] {
    ArchiveReader tar(archive);
    std::string name;
    int64_t size = 0;
    std::vector<uint8_t> data;
    while (tar.next_file(&name, &size)) {
      data.resize(static_cast<size_t>(size));
      tar.read(data.data(), size);
    }
  });
  BOOST_TEST(e.find("truncated") != std::string::npos);
  BOOST_TEST(e.find(archive) != std::string::npos);
}
