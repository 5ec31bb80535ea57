#include "fixtures.h"

#include <ftw.h>
#include <jpeglib.h>
#include <lmdb.h>
#include <png.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <webp/encode.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>

#include "core/fs.h"
#include "core/h5.h"
#include "data/checksum.h"
#include "data/shard_writer.h"

namespace ddpm::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/ddpm-data-test-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  nftw(path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return remove(p); }, 16, FTW_DEPTH | FTW_PHYS);
}

data::Image pattern_image(int height, int width, int channels, uint32_t seed, bool smooth) {
  data::Image img;
  img.height = height;
  img.width = width;
  img.channels = channels;
  img.pixels.resize(static_cast<size_t>(height) * width * channels);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        uint32_t v;
        if (smooth) {
          // Gradients without wrap-around: at most 40 + 59 + 100 + 50 + 2 * 2 < 256.
          v = 40u + seed * 37u % 60u + static_cast<uint32_t>(y * 100 / height + x * 50 / width + c * 2);
        } else {
          uint32_t h = seed * 0x9E3779B1u ^ static_cast<uint32_t>((y * 4099 + x) * 8 + c) * 0x85EBCA77u;
          h ^= h >> 15;
          h *= 0xC2B2AE3Du;
          h ^= h >> 13;
          v = h & 0xFF;
        }
        img.pixels[(static_cast<size_t>(y) * width + x) * channels + c] = static_cast<uint8_t>(v);
      }
    }
  }
  return img;
}

// ---- PNG

namespace {
void png_append(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void png_flush_nothing(png_structp) {}

bool png_write_all(png_structp png, png_infop info, std::vector<png_bytep>* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_write_info(png, info);
  png_write_image(png, rows->data());
  png_write_end(png, nullptr);
  return true;
}
}  // namespace

std::vector<uint8_t> encode_png(const data::Image& image, const PngOptions& o) {
  const int w = image.width, h = image.height, c = image.channels;
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, png_append, png_flush_nothing);

  int color_type = c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
  int samples = c;
  std::vector<png_color> palette;
  std::map<uint32_t, int> palette_index;
  if (o.palette) {
    color_type = PNG_COLOR_TYPE_PALETTE;
    samples = 1;
    for (size_t i = 0; i < image.pixels.size(); i += 3) {
      const uint32_t key = (uint32_t{image.pixels[i]} << 16) | (uint32_t{image.pixels[i + 1]} << 8) | image.pixels[i + 2];
      if (!palette_index.count(key)) {
        palette_index[key] = static_cast<int>(palette.size());
        palette.push_back(png_color{image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]});
      }
    }
    if (palette.size() > 256) throw std::runtime_error("too many colours for a palette");
    png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  } else if (o.alpha) {
    color_type = c == 1 ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_RGB_ALPHA;
    samples = c + 1;
  }
  png_set_IHDR(png, info, w, h, o.bit_depth, color_type, o.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  const int bytes_per_sample = o.bit_depth / 8;
  std::vector<uint8_t> buffer(static_cast<size_t>(w) * h * samples * bytes_per_sample);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const uint8_t* px = image.pixels.data() + (static_cast<size_t>(y) * w + x) * c;
      uint8_t* dst = buffer.data() + (static_cast<size_t>(y) * w + x) * samples * bytes_per_sample;
      std::vector<int> values;
      if (o.palette) {
        values.push_back(palette_index[(uint32_t{px[0]} << 16) | (uint32_t{px[1]} << 8) | px[2]]);
      } else {
        for (int k = 0; k < c; ++k) values.push_back(px[k]);
        if (o.alpha) values.push_back((x * 7 + y) & 0xFF);
      }
      for (size_t k = 0; k < values.size(); ++k) {
        if (bytes_per_sample == 1) {
          dst[k] = static_cast<uint8_t>(values[k]);
        } else {  // 16-bit big-endian: v * 257 scales back to v exactly
          const int v16 = values[k] * 257;
          dst[2 * k] = static_cast<uint8_t>(v16 >> 8);
          dst[2 * k + 1] = static_cast<uint8_t>(v16);
        }
      }
    }
  }
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = buffer.data() + static_cast<size_t>(y) * w * samples * bytes_per_sample;
  const bool ok = png_write_all(png, info, &rows);
  png_destroy_write_struct(&png, &info);
  if (!ok) throw std::runtime_error("libpng failed to encode the test image");
  return out;
}

// ---- JPEG and WebP

std::vector<uint8_t> encode_jpeg(const data::Image& image, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // errors exit: acceptable for test inputs we make
  jpeg_create_compress(&cinfo);
  unsigned char* mem = nullptr;
  unsigned long mem_size = 0;
  jpeg_mem_dest(&cinfo, &mem, &mem_size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = image.channels;
  cinfo.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.pixels.data()) +
                   static_cast<size_t>(cinfo.next_scanline) * image.width * image.channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(mem, mem + mem_size);
  jpeg_destroy_compress(&cinfo);
  free(mem);
  return out;
}

std::vector<uint8_t> encode_webp_lossless(const data::Image& image) {
  if (image.channels != 3) throw std::runtime_error("WebP test images are RGB");
  uint8_t* out = nullptr;
  const size_t n = WebPEncodeLosslessRGB(image.pixels.data(), image.width, image.height, image.width * 3, &out);
  if (n == 0) throw std::runtime_error("WebP encoding failed");
  std::vector<uint8_t> bytes(out, out + n);
  WebPFree(out);
  return bytes;
}

// ---- files

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void make_dirs(const std::string& path) { fs::make_dirs(path); }

void write_cifar_batch(const std::string& path, const std::vector<data::Image>& images,
                       const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  for (size_t n = 0; n < images.size(); ++n) {
    bytes.push_back(labels[n]);
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 32 * 32; ++i) bytes.push_back(images[n].pixels[static_cast<size_t>(3 * i + c)]);
    }
  }
  write_file(path, bytes);
}

namespace {
void put_be32(std::vector<uint8_t>* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<uint8_t>(v >> s));
}
void write_maybe_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  if (path.size() < 3 || path.compare(path.size() - 3, 3, ".gz") != 0) return write_file(path, bytes);
  gzFile gz = gzopen(path.c_str(), "wb");
  if (!gz || gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size())) {
    throw std::runtime_error("gzip write failed: " + path);
  }
  gzclose(gz);
}
}  // namespace

void write_idx_images(const std::string& path, const std::vector<data::Image>& images) {
  std::vector<uint8_t> bytes;
  put_be32(&bytes, 0x803);
  put_be32(&bytes, static_cast<uint32_t>(images.size()));
  put_be32(&bytes, static_cast<uint32_t>(images.at(0).height));
  put_be32(&bytes, static_cast<uint32_t>(images.at(0).width));
  for (const data::Image& img : images) bytes.insert(bytes.end(), img.pixels.begin(), img.pixels.end());
  write_maybe_gz(path, bytes);
}

void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  put_be32(&bytes, 0x801);
  put_be32(&bytes, static_cast<uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  write_maybe_gz(path, bytes);
}

void write_lmdb(const std::string& dir, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries) {
  make_dirs(dir);
  MDB_env* env = nullptr;
  MDB_txn* txn = nullptr;
  MDB_dbi dbi;
  auto check = [](int rc) {
    if (rc != MDB_SUCCESS) throw std::runtime_error(std::string("lmdb: ") + mdb_strerror(rc));
  };
  check(mdb_env_create(&env));
  check(mdb_env_set_mapsize(env, size_t{256} << 20));
  check(mdb_env_open(env, dir.c_str(), 0, 0644));
  check(mdb_txn_begin(env, nullptr, 0, &txn));
  check(mdb_dbi_open(txn, nullptr, 0, &dbi));
  for (const auto& [key, value] : entries) {
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<uint8_t*>(value.data())};
    check(mdb_put(txn, dbi, &k, &v, 0));
  }
  check(mdb_txn_commit(txn));
  mdb_env_close(env);
}

data::Manifest write_synthetic_dataset(const std::string& dir, int64_t count, const data::ImageShape& shape,
                                       int64_t num_shards, bool labels) {
  data::DatasetWriter writer(dir, "synthetic test data", count, num_shards, 0, labels);
  writer.set_shape(shape);
  for (int64_t i = 0; i < count; ++i) {
    const data::Image img = pattern_image(shape.height, shape.width, shape.channels, static_cast<uint32_t>(i));
    writer.add(i, img.pixels.data(), data::crc32_of(img.pixels.data(), img.pixels.size()),
               static_cast<int32_t>(i % 10));
  }
  return writer.commit();
}

void flip_byte(const std::string& path, int64_t offset, uint8_t mask) {
  std::vector<uint8_t> bytes = read_file(path);
  bytes.at(static_cast<size_t>(offset)) ^= mask;
  write_file(path, bytes);
}

void truncate_file(const std::string& path, int64_t size) {
  if (truncate(path.c_str(), size) != 0) throw std::runtime_error("truncate failed: " + path);
}

int64_t image_offset_in_shard(const std::string& shard_path, int64_t i) {
  h5::File f = h5::File::open_read(shard_path);
  h5::Lock lock;
  h5::Handle ds = f.open_dataset("images");
  const hsize_t offset[4] = {static_cast<hsize_t>(i), 0, 0, 0};
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  unsigned filter_mask = 0;
  if (H5Dget_chunk_info_by_coord(ds.get(), offset, &filter_mask, &addr, &size) < 0 || addr == HADDR_UNDEF) {
    throw std::runtime_error("no chunk for image " + std::to_string(i));
  }
  return static_cast<int64_t>(addr);
}

int run_command(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace ddpm::testing
