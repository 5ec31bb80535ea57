#include "data/decode.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/common.h"

namespace ddpm::data {

Codec sniff_codec(const uint8_t* data, size_t size) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) return Codec::kPng;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return Codec::kJpeg;
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) return Codec::kWebp;
  return Codec::kUnknown;
}

const char* codec_name(Codec codec) {
  switch (codec) {
    case Codec::kPng: return "PNG";
    case Codec::kJpeg: return "JPEG";
    case Codec::kWebp: return "WebP";
    default: return "unknown";
  }
}

namespace {

[[noreturn]] void too_large(int64_t width, int64_t height) {
  input_error("image is ", width, "x", height, ", larger than the limit of ", kMaxDecodePixels, " pixels");
}

bool size_ok(int64_t width, int64_t height) { return width > 0 && height > 0 && width * height <= kMaxDecodePixels; }

// ---- PNG. libpng reports errors by longjmp: the work that may jump lives in functions
// whose locals have no destructors, and all state sits in PngJob.
struct PngJob {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  png_structp png = nullptr;
  png_infop info = nullptr;
  Image* out = nullptr;
  std::vector<png_bytep>* rows = nullptr;
  char message[200] = "";
};

void png_read_memory(png_structp png, png_bytep dst, png_size_t n) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (n > job->size - job->pos) png_error(png, "truncated PNG data");
  std::memcpy(dst, job->data + job->pos, n);
  job->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof(job->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

bool png_decode_body(PngJob* job) {
  png_structp png = job->png;
  png_infop info = job->info;
  png_read_info(png, info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color_type = 0;
  png_get_IHDR(png, info, &width, &height, &depth, &color_type, nullptr, nullptr, nullptr);
  if (!size_ok(width, height)) {
    std::snprintf(job->message, sizeof(job->message), "image is %ux%u, larger than the limit of %lld pixels",
                  static_cast<unsigned>(width), static_cast<unsigned>(height), static_cast<long long>(kMaxDecodePixels));
    return false;
  }
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_scale_16(png);
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  if ((channels != 1 && channels != 3) || png_get_rowbytes(png, info) != size_t{width} * channels) {
    std::snprintf(job->message, sizeof(job->message), "unsupported PNG pixel layout");
    return false;
  }
  Image& out = *job->out;
  out.height = static_cast<int>(height);
  out.width = static_cast<int>(width);
  out.channels = channels;
  out.pixels.resize(size_t{width} * height * channels);
  job->rows->resize(height);
  for (png_uint_32 y = 0; y < height; ++y) (*job->rows)[y] = out.pixels.data() + size_t{y} * width * channels;
  png_read_image(png, job->rows->data());
  png_read_end(png, nullptr);
  return true;
}

bool png_run(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  return png_decode_body(job);
}

Image decode_png(const uint8_t* data, size_t size) {
  Image out;
  std::vector<png_bytep> rows;
  PngJob job;
  job.data = data;
  job.size = size;
  job.out = &out;
  job.rows = &rows;
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
  if (!job.png) throw std::bad_alloc();
  job.info = png_create_info_struct(job.png);
  if (!job.info) {
    png_destroy_read_struct(&job.png, nullptr, nullptr);
    throw std::bad_alloc();
  }
  png_set_read_fn(job.png, &job, png_read_memory);
  png_set_chunk_malloc_max(job.png, 8u << 20);  // ancillary chunks (text, ICC) up to 8 MiB
  const bool ok = png_run(&job);
  png_destroy_read_struct(&job.png, &job.info, nullptr);
  if (!ok) input_error("corrupt PNG: ", job.message);
  return out;
}

// ---- JPEG: the same longjmp discipline. libjpeg's warnings (corrupt or truncated
// data) are errors here, so a damaged file is never imported with grey blocks.
struct JpegJob {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64] = "";
  Image* out = nullptr;
};

constexpr int kMaxJpegScans = 500;  // progressive JPEGs with more scans are a decode-time bomb

void jpeg_on_error(j_common_ptr cinfo) {
  auto* job = reinterpret_cast<JpegJob*>(cinfo->client_data);
  char msg[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, msg);
  std::snprintf(job->message, sizeof(job->message), "%s", msg);
  std::longjmp(job->jump, 1);
}

void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_on_error(cinfo);  // a warning: corrupt data
}

void jpeg_on_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (cinfo->is_decompressor && d->input_scan_number > kMaxJpegScans) {
    auto* job = reinterpret_cast<JpegJob*>(cinfo->client_data);
    std::snprintf(job->message, sizeof(job->message), "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(job->jump, 1);
  }
}

bool jpeg_decode_body(JpegJob* job, const uint8_t* data, size_t size) {
  j_decompress_ptr cinfo = &job->cinfo;
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  if (!size_ok(cinfo->image_width, cinfo->image_height)) {
    std::snprintf(job->message, sizeof(job->message), "image is %ux%u, larger than the limit of %lld pixels",
                  cinfo->image_width, cinfo->image_height, static_cast<long long>(kMaxDecodePixels));
    return false;
  }
  if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
    std::snprintf(job->message, sizeof(job->message), "CMYK JPEG is not supported");
    return false;
  }
  cinfo->out_color_space = cinfo->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(cinfo);
  const int channels = cinfo->output_components;
  if (channels != 1 && channels != 3) {
    std::snprintf(job->message, sizeof(job->message), "unsupported JPEG with %d components", channels);
    return false;
  }
  Image& out = *job->out;
  out.height = static_cast<int>(cinfo->output_height);
  out.width = static_cast<int>(cinfo->output_width);
  out.channels = channels;
  out.pixels.resize(size_t{cinfo->output_width} * cinfo->output_height * channels);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out.pixels.data() + size_t{cinfo->output_scanline} * cinfo->output_width * channels;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

// The only setjmp for JPEG: everything that may jump runs below it.
bool jpeg_run(JpegJob* job, const uint8_t* data, size_t size) {
  if (setjmp(job->jump)) return false;
  jpeg_create_decompress(&job->cinfo);  // keeps err and client_data
  job->progress.progress_monitor = jpeg_on_progress;
  job->cinfo.progress = &job->progress;
  job->cinfo.mem->max_memory_to_use = 1024L << 20;
  return jpeg_decode_body(job, data, size);
}

Image decode_jpeg(const uint8_t* data, size_t size) {
  Image out;
  auto job = std::make_unique<JpegJob>();  // value-initialised: cinfo.mem starts null
  job->out = &out;
  job->cinfo.err = jpeg_std_error(&job->err);
  job->err.error_exit = jpeg_on_error;
  job->err.emit_message = jpeg_on_message;
  job->cinfo.client_data = job.get();
  const bool ok = jpeg_run(job.get(), data, size);
  jpeg_destroy_decompress(&job->cinfo);  // safe on a partly created struct
  if (!ok) input_error("corrupt JPEG: ", job->message);
  return out;
}

// ---- WebP (the LSUN LMDB values): no longjmp, plain status codes.
Image decode_webp(const uint8_t* data, size_t size) {
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(data, size, &features) != VP8_STATUS_OK) input_error("corrupt WebP: unreadable header");
  if (!size_ok(features.width, features.height)) too_large(features.width, features.height);
  if (features.has_animation) input_error("animated WebP is not supported");
  Image out;
  out.height = features.height;
  out.width = features.width;
  out.channels = 3;
  out.pixels.resize(size_t(features.width) * features.height * 3);
  if (!WebPDecodeRGBInto(data, size, out.pixels.data(), out.pixels.size(), features.width * 3)) {
    input_error("corrupt WebP: the image data does not decode");
  }
  return out;
}

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }

bool is_jpeg_sof(uint8_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

int probe_jpeg(const uint8_t* data, size_t size) {
  size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return 0;
    const uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // no length field
      pos += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return 0;  // end or scan before any frame header
    const uint32_t length = be16(data + pos + 2);
    if (is_jpeg_sof(marker)) {
      if (pos + 10 > size) return 0;
      return data[pos + 9] == 1 ? 1 : 3;  // number of components
    }
    pos += 2 + length;
  }
  return 0;
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size) {
  switch (sniff_codec(data, size)) {
    case Codec::kPng: return decode_png(data, size);
    case Codec::kJpeg: return decode_jpeg(data, size);
    case Codec::kWebp: return decode_webp(data, size);
    default: input_error("not a PNG, JPEG or WebP image (", size, " bytes)");
  }
}

int probe_channels(const uint8_t* data, size_t size) {
  switch (sniff_codec(data, size)) {
    case Codec::kPng:
      // Signature (8), IHDR length and type (8), width, height (8), depth (1), colour type.
      if (size < 26 || std::memcmp(data + 12, "IHDR", 4) != 0) return 0;
      return (data[25] == 0 || data[25] == 4) ? 1 : 3;  // grey, grey + alpha
    case Codec::kJpeg: return probe_jpeg(data, size);
    case Codec::kWebp: return 3;
    default: return 0;
  }
}

}  // namespace ddpm::data
