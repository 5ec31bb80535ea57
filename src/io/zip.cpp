#include "io/zip.h"

#include <zip.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>

#include "core/common.h"

namespace ddpm {
namespace {

// libzip's error code as a problem a user can act on; libzip's own words after it.
std::string explain(zip_error_t* error) {
  const int code = zip_error_code_zip(error);
  const std::string libzip = cat(" (libzip: ", zip_error_strerror(error), ")");
  switch (code) {
    case ZIP_ER_NOZIP: return "not a zip archive (an .npz is one)" + libzip;
    case ZIP_ER_INCONS: return "a damaged zip archive: its directory and member headers disagree" + libzip;
    case ZIP_ER_EXISTS: return "a zip archive with two members of the same name" + libzip;
    case ZIP_ER_CRC: return "its data does not match its CRC-32" + libzip;
    case ZIP_ER_COMPRESSED_DATA: return "its deflate data is invalid or ends early" + libzip;
    case ZIP_ER_EOF: return "the archive ends early" + libzip;
    default: return "cannot be read as a zip archive" + libzip;
  }
}

std::string explain_code(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = explain(&error);
  zip_error_fini(&error);
  return text;
}

// The bytes of one member to write: its parts one after the other, read by libzip when
// the archive is closed (zip_source_function's protocol).
struct PartsSource {
  const std::vector<std::pair<const void*, uint64_t>>* parts = nullptr;
  uint64_t total = 0;
  size_t part = 0;
  uint64_t offset = 0;  // within parts[part]
  zip_error_t error{};
};

zip_int64_t read_parts(void* state, void* data, zip_uint64_t length, zip_source_cmd_t command) {
  auto* s = static_cast<PartsSource*>(state);
  switch (command) {
    case ZIP_SOURCE_OPEN:
      s->part = 0, s->offset = 0;
      return 0;
    case ZIP_SOURCE_READ: {
      auto* out = static_cast<uint8_t*>(data);
      zip_uint64_t done = 0;
      while (done < length && s->part < s->parts->size()) {
        const auto& [bytes, size] = (*s->parts)[s->part];
        const uint64_t n = std::min<uint64_t>(length - done, size - s->offset);
        if (n > 0) std::memcpy(out + done, static_cast<const uint8_t*>(bytes) + s->offset, n);
        done += n, s->offset += n;
        if (s->offset == size) ++s->part, s->offset = 0;
      }
      return static_cast<zip_int64_t>(done);
    }
    case ZIP_SOURCE_CLOSE:
    case ZIP_SOURCE_FREE:  // the caller owns the state
      return 0;
    case ZIP_SOURCE_STAT: {
      auto* st = static_cast<zip_stat_t*>(data);
      zip_stat_init(st);
      st->size = s->total;
      st->valid |= ZIP_STAT_SIZE;
      return sizeof(*st);
    }
    case ZIP_SOURCE_ERROR:
      return zip_error_to_data(&s->error, data, length);
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                            ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
    default:
      zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
  }
}

// 1980-01-01 00:00 in local time: libzip stores local DOS dates, so this is the time that
// writes the earliest date zip can hold, the same on every machine.
time_t earliest_dos_time() {
  std::tm t{};
  t.tm_year = 80, t.tm_mon = 0, t.tm_mday = 1, t.tm_isdst = -1;
  return std::mktime(&t);
}

}  // namespace

std::string printable_name(const std::string& name) {
  std::string out;
  for (const unsigned char c : name) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return "'" + out + "'";
}

ZipMemberStream::ZipMemberStream(zip_file* file, const ZipMember& member, std::string where)
    : file_(file), where_(std::move(where)), size_(member.size) {}

ZipMemberStream::~ZipMemberStream() { zip_fclose(file_); }

void ZipMemberStream::fail(const std::string& what) const { input_error(where_, ": ", what); }

void ZipMemberStream::read(void* out, uint64_t n) {
  if (n > remaining()) fail(cat("wanted ", n, " more bytes, ", remaining(), " are left"));
  auto* bytes = static_cast<uint8_t*>(out);
  for (uint64_t got = 0; got < n;) {
    const zip_int64_t r = zip_fread(file_, bytes + got, n - got);
    if (r < 0) fail(explain(zip_file_get_error(file_)));
    if (r == 0) fail(cat("ends after ", done_ + got, " of the ", size_, " bytes its directory entry claims"));
    got += static_cast<uint64_t>(r);
  }
  done_ += n;
}

void ZipMemberStream::finish() {
  std::vector<uint8_t> rest(static_cast<size_t>(std::min<uint64_t>(remaining(), uint64_t{1} << 16)));
  while (remaining() > 0) read(rest.data(), std::min<uint64_t>(remaining(), rest.size()));
  // libzip checks the CRC-32 on the read that finds the member's end.
  uint8_t extra;
  const zip_int64_t r = zip_fread(file_, &extra, 1);
  if (r < 0) fail(explain(zip_file_get_error(file_)));
  if (r > 0) fail(cat("holds more than the ", size_, " bytes its directory entry claims"));
}

ZipReader::ZipReader(const std::string& path) : path_(path) {
  int code = 0;
  archive_ = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (archive_ == nullptr) {
    if (code == ZIP_ER_NOENT || code == ZIP_ER_OPEN || code == ZIP_ER_READ) {
      input_error(path, ": cannot read the file (", std::strerror(errno), ")");
    }
    input_error(path, ": ", explain_code(code));
  }
  try {
    const zip_int64_t count = zip_get_num_entries(archive_, 0);
    std::set<std::string> names;
    for (zip_int64_t i = 0; i < count; ++i) {
      zip_stat_t st;
      if (zip_stat_index(archive_, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW, &st) != 0) {
        input_error(path, ": member ", i, ": ", explain(zip_get_error(archive_)));
      }
      ZipMember m;
      m.name = st.name != nullptr ? st.name : "";
      m.index = static_cast<uint64_t>(i);
      m.size = st.size;
      const std::string member = cat(path, ": member ", printable_name(m.name));
      // What numpy never writes is refused, whatever this libzip could decode.
      if (st.encryption_method != ZIP_EM_NONE) input_error(member, " is encrypted");
      if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE) {
        input_error(member, ": compression method ", st.comp_method, " (numpy writes stored or deflated members)");
      }
      if (!names.insert(m.name).second) input_error(member, " appears twice");
      members_.push_back(m);
    }
  } catch (...) {
    zip_discard(archive_);
    throw;
  }
}

ZipReader::~ZipReader() { zip_discard(archive_); }

const ZipMember* ZipReader::find(const std::string& name) const {
  for (const ZipMember& m : members_) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::unique_ptr<ZipMemberStream> ZipReader::open(const ZipMember& member) const {
  const std::string where = cat(path_, ": member ", printable_name(member.name));
  zip_file_t* file = zip_fopen_index(archive_, member.index, 0);
  if (file == nullptr) input_error(where, ": ", explain(zip_get_error(archive_)));
  return std::make_unique<ZipMemberStream>(file, member, where);
}

void write_stored_zip(const std::string& path, const std::string& name, const std::vector<ZipEntry>& entries) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (archive == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    input_error(name, ": cannot create the archive (libzip: ", zip_error_strerror(&error), ")");
  }
  std::vector<std::unique_ptr<PartsSource>> sources;  // read by zip_close
  const time_t when = earliest_dos_time();
  const auto fail = [&](const std::string& what) {
    const std::string why = zip_error_strerror(zip_get_error(archive));
    zip_discard(archive);
    input_error(name, ": ", what, " (libzip: ", why, ")");
  };
  for (const ZipEntry& entry : entries) {
    auto s = std::make_unique<PartsSource>();
    s->parts = &entry.parts;
    for (const auto& part : entry.parts) s->total += part.second;
    zip_error_init(&s->error);
    zip_source_t* source = zip_source_function(archive, &read_parts, s.get());
    if (source == nullptr) fail("cannot add " + printable_name(entry.name));
    const zip_int64_t index = zip_file_add(archive, entry.name.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);
      fail("cannot add " + printable_name(entry.name));
    }
    if (zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0 ||
        zip_file_set_mtime(archive, static_cast<zip_uint64_t>(index), when, 0) != 0) {
      fail("cannot add " + printable_name(entry.name));
    }
    sources.push_back(std::move(s));
  }
  if (zip_close(archive) != 0) fail("cannot write the archive");
}

}  // namespace ddpm
