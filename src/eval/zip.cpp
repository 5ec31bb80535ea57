// Zip archives as numpy's savez / savez_compressed write them (PKWARE APPNOTE 6.3:
// local headers, central directory, end records, zip64 extensions).
#include "eval/zip.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/common.h"

namespace ddpm::eval {
namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint64_t kLocalHeaderBytes = 30;
constexpr uint64_t kCentralHeaderBytes = 46;
constexpr uint64_t kEndBytes = 22;
constexpr uint64_t kZip64EndBytes = 56;
constexpr uint64_t kZip64LocatorBytes = 20;
constexpr uint64_t kMaxCommentBytes = 0xFFFF;
constexpr uint16_t kSaturated16 = 0xFFFF;
constexpr uint32_t kSaturated32 = 0xFFFFFFFF;
constexpr uint16_t kFlagEncrypted = 0x0001;
constexpr uint16_t kZip64Version = 45;     // "version needed" for zip64 records
constexpr uint16_t kMadeByUnix = 3 << 8;   // the host byte of "version made by"
constexpr uint16_t kDosDate1980 = 0x0021;  // 1980-01-01, the earliest DOS date
// Deflate's best case is about 1032:1 (258-byte matches at two bits each): a member
// claiming more is not deflate data, and believing it would allocate for nothing.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr uint64_t kChunkBytes = uint64_t{1} << 16;

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

namespace {

// Little-endian fields of a buffer; reading past its end is an InputError naming `what`.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& path, std::string what)
      : data_(data), size_(size), path_(path), what_(std::move(what)) {}

  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  const uint8_t* bytes(uint64_t n) {
    const uint8_t* p = need(n);
    pos_ += n;
    return p;
  }
  uint64_t left() const { return size_ - pos_; }

 private:
  const uint8_t* need(uint64_t n) {
    if (n > size_ - pos_) input_error(path_, ": ", what_, " is cut short (not a valid zip archive)");
    return data_ + pos_;
  }
  uint64_t le(int n) {
    const uint8_t* p = bytes(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }

  const uint8_t* data_;
  uint64_t size_, pos_ = 0;
  const std::string& path_;
  std::string what_;
};

uint32_t crc32_update(uint32_t crc, const void* data, uint64_t n) {
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {
    const auto step = static_cast<uInt>(std::min<uint64_t>(n, uint64_t{1} << 30));
    crc = static_cast<uint32_t>(::crc32(crc, p, step));
    p += step;
    n -= step;
  }
  return crc;
}

// Where the central directory is, from the end records.
struct Directory {
  uint64_t entries = 0, offset = 0, size = 0;
  uint64_t end = 0;  // where the directory must end: the first end record
};

Directory read_end_records(const RandomAccessFile& file) {
  const std::string& path = file.path();
  if (file.size() < kEndBytes) input_error(path, ": not a zip archive (", file.size(), " bytes, too short)");
  // The end record is the last 22 bytes plus a comment of at most 64 KiB.
  const uint64_t tail_size = std::min(file.size(), kEndBytes + kMaxCommentBytes);
  const uint64_t tail_start = file.size() - tail_size;
  std::vector<uint8_t> tail(tail_size);
  file.read_at(tail_start, tail.data(), tail_size, "the end of the archive");
  uint64_t end_pos = tail_size;  // within tail
  for (uint64_t i = tail_size - kEndBytes + 1; i-- > 0;) {
    Cursor c(tail.data() + i, tail_size - i, path, "the end record");
    if (c.u32() != kEndSignature) continue;
    c.bytes(16);
    if (c.u16() == tail_size - i - kEndBytes) {  // its comment reaches the end of the file
      end_pos = i;
      break;
    }
  }
  if (end_pos == tail_size) input_error(path, ": not a zip archive (no end of central directory record)");

  Cursor end(tail.data() + end_pos, kEndBytes, path, "the end record");
  end.u32();
  const uint16_t disk = end.u16(), directory_disk = end.u16(), disk_entries = end.u16();
  Directory dir;
  dir.entries = end.u16();
  dir.size = end.u32();
  dir.offset = end.u32();
  dir.end = tail_start + end_pos;
  const bool single_disk = disk == 0 && directory_disk == 0 && disk_entries == dir.entries;

  // A zip64 end record, when there is one, is found through the locator just before.
  uint8_t locator[kZip64LocatorBytes];
  if (dir.end >= kZip64LocatorBytes) {
    file.read_at(dir.end - kZip64LocatorBytes, locator, kZip64LocatorBytes, "the zip64 locator");
    Cursor loc(locator, kZip64LocatorBytes, path, "the zip64 locator");
    if (loc.u32() == kZip64LocatorSignature) {
      const uint32_t record_disk = loc.u32();
      const uint64_t record_offset = loc.u64();
      const uint32_t disks = loc.u32();
      const uint64_t record_limit = dir.end - kZip64LocatorBytes;
      if (record_disk != 0 || disks != 1) input_error(path, ": multi-disk zip archives are not supported");
      if (record_offset > record_limit || record_limit - record_offset < kZip64EndBytes) {
        input_error(path, ": the zip64 end record lies outside the archive (truncated or damaged)");
      }
      uint8_t record[kZip64EndBytes];
      file.read_at(record_offset, record, kZip64EndBytes, "the zip64 end record");
      Cursor z(record, kZip64EndBytes, path, "the zip64 end record");
      if (z.u32() != kZip64EndSignature) input_error(path, ": the zip64 end record is missing (damaged archive)");
      z.bytes(8 + 2 + 2);  // its size, versions
      const uint32_t disk64 = z.u32(), directory_disk64 = z.u32();
      const uint64_t disk_entries64 = z.u64();
      dir.entries = z.u64();
      dir.size = z.u64();
      dir.offset = z.u64();
      dir.end = record_offset;
      if (disk64 != 0 || directory_disk64 != 0 || disk_entries64 != dir.entries) {
        input_error(path, ": multi-disk zip archives are not supported");
      }
      return dir;
    }
  }
  if (!single_disk) input_error(path, ": multi-disk zip archives are not supported");
  return dir;
}

// The sizes and offset that a central directory entry saturates (0xFFFFFFFF) are in its
// zip64 extra field, in this order.
void apply_zip64_extra(Cursor extra, ZipMember* m, bool size_saturated, bool compressed_saturated,
                       bool offset_saturated, const std::string& path) {
  bool found = false;
  while (extra.left() > 0) {
    const uint16_t id = extra.u16(), length = extra.u16();
    const uint8_t* field = extra.bytes(length);
    if (id != kZip64ExtraId || found) continue;
    found = true;
    Cursor z(field, length, path, cat("the zip64 field of member ", printable_name(m->name)));
    if (size_saturated) m->size = z.u64();
    if (compressed_saturated) m->compressed_size = z.u64();
    if (offset_saturated) m->header_offset = z.u64();
  }
  if (!found && (size_saturated || compressed_saturated || offset_saturated)) {
    input_error(path, ": member ", printable_name(m->name), " has no zip64 field for its sizes (damaged archive)");
  }
}

ZipMember parse_central_entry(Cursor& c, const std::string& path) {
  if (c.u32() != kCentralHeaderSignature) input_error(path, ": the central directory is damaged (bad entry signature)");
  c.bytes(4);  // versions made by, needed
  const uint16_t flags = c.u16(), method = c.u16();
  c.bytes(4);  // DOS time and date
  ZipMember m;
  m.crc32 = c.u32();
  m.compressed_size = c.u32();
  m.size = c.u32();
  const uint16_t name_length = c.u16(), extra_length = c.u16(), comment_length = c.u16();
  const uint16_t disk = c.u16();
  c.bytes(2 + 4);  // internal and external attributes
  m.header_offset = c.u32();
  const uint8_t* name = c.bytes(name_length);
  m.name.assign(reinterpret_cast<const char*>(name), name_length);
  const uint8_t* extra = c.bytes(extra_length);
  c.bytes(comment_length);
  apply_zip64_extra(Cursor(extra, extra_length, path, cat("the extra fields of member ", printable_name(m.name))), &m,
                    m.size == kSaturated32, m.compressed_size == kSaturated32, m.header_offset == kSaturated32, path);

  const std::string member = cat("member ", printable_name(m.name));
  if (m.name.empty()) input_error(path, ": a member has an empty name");
  if (disk != 0 && disk != kSaturated16) input_error(path, ": multi-disk zip archives are not supported");
  if (flags & kFlagEncrypted) input_error(path, ": ", member, " is encrypted");
  if (method != static_cast<uint16_t>(ZipMethod::kStored) && method != static_cast<uint16_t>(ZipMethod::kDeflated)) {
    input_error(path, ": ", member, " uses compression method ", method, " (only stored and deflate, as numpy writes)");
  }
  m.method = static_cast<ZipMethod>(method);
  if (m.method == ZipMethod::kStored && m.size != m.compressed_size) {
    input_error(path, ": ", member, " is stored but its sizes differ (", m.compressed_size, " and ", m.size, ")");
  }
  if (m.method == ZipMethod::kDeflated && m.size / kMaxDeflateRatio > m.compressed_size) {
    input_error(path, ": ", member, " claims ", m.size, " bytes from ", m.compressed_size,
                " compressed (more than deflate can give)");
  }
  return m;
}

// The data offset from the member's local header, which must agree with the directory.
void read_local_header(const RandomAccessFile& file, uint64_t directory_offset, ZipMember* m) {
  const std::string& path = file.path();
  const std::string member = cat("member ", printable_name(m->name));
  if (m->header_offset > directory_offset || directory_offset - m->header_offset < kLocalHeaderBytes) {
    input_error(path, ": ", member, " starts past the central directory (truncated or damaged)");
  }
  uint8_t header[kLocalHeaderBytes];
  file.read_at(m->header_offset, header, kLocalHeaderBytes, cat("the local header of ", member));
  Cursor c(header, kLocalHeaderBytes, path, cat("the local header of ", member));
  if (c.u32() != kLocalHeaderSignature) input_error(path, ": ", member, " has no local header where the directory says");
  c.bytes(2 + 2);  // version needed, flags
  const uint16_t method = c.u16();
  c.bytes(4 + 4 + 4 + 4);  // time, date, CRC, sizes: the directory's values are the ones used
  const uint16_t name_length = c.u16(), extra_length = c.u16();
  if (method != static_cast<uint16_t>(m->method) || name_length != m->name.size()) {
    input_error(path, ": ", member, ": its local header does not match the central directory");
  }
  m->data_offset = m->header_offset + kLocalHeaderBytes + name_length + extra_length;
  if (m->data_offset > directory_offset || directory_offset - m->data_offset < m->compressed_size) {
    input_error(path, ": ", member, "'s data runs into the central directory (truncated or damaged)");
  }
  std::string name(name_length, '\0');
  file.read_at(m->header_offset + kLocalHeaderBytes, name.data(), name_length, cat("the local header of ", member));
  if (name != m->name) input_error(path, ": ", member, ": its local header names another member");
}

// What both kinds of member share: the size bound, the CRC of what was read, and
// finish() reading the rest.
class CheckedStream : public ZipMemberStream {
 public:
  CheckedStream(const RandomAccessFile& file, const ZipMember& m) : file_(file), m_(m) {}

  void read(void* out, uint64_t n) final {
    if (n > remaining()) fail("is shorter than its contents say");
    produce(static_cast<uint8_t*>(out), n);
    crc_ = crc32_update(crc_, out, n);
    done_ += n;
  }
  uint64_t remaining() const final { return m_.size - done_; }
  void finish() final {
    std::vector<uint8_t> skip(static_cast<size_t>(std::min(remaining(), kChunkBytes)));
    while (remaining() > 0) read(skip.data(), std::min<uint64_t>(remaining(), skip.size()));
    check_end();
    if (crc_ != m_.crc32) fail("fails its CRC-32 check (damaged)");
  }

 protected:
  // The next n bytes of the member.
  virtual void produce(uint8_t* out, uint64_t n) = 0;
  // After the last byte: what the encoding must show there.
  virtual void check_end() {}
  [[noreturn]] void fail(const std::string& what) const {
    input_error(file_.path(), ": member ", printable_name(m_.name), " ", what);
  }

  const RandomAccessFile& file_;
  const ZipMember& m_;
  uint64_t done_ = 0;

 private:
  uint32_t crc_ = 0;
};

class StoredStream : public CheckedStream {
 public:
  using CheckedStream::CheckedStream;

 private:
  void produce(uint8_t* out, uint64_t n) override {
    file_.read_at(m_.data_offset + done_, out, n, cat("member ", printable_name(m_.name)));
  }
};

class DeflateStream : public CheckedStream {
 public:
  DeflateStream(const RandomAccessFile& file, const ZipMember& m)
      : CheckedStream(file, m), in_(kChunkBytes), in_left_(m.compressed_size) {
    std::memset(&z_, 0, sizeof z_);
    // Negative window bits: raw deflate data, as zip stores it (no zlib or gzip header).
    if (inflateInit2(&z_, -MAX_WBITS) != Z_OK) throw Error("zlib: inflateInit2 failed");
  }
  ~DeflateStream() override { inflateEnd(&z_); }

 private:
  void produce(uint8_t* out, uint64_t n) override { inflate_into(out, n); }
  // The deflate stream must end here: no more output, and no compressed bytes after it.
  void check_end() override {
    uint8_t extra = 0;
    while (!ended_) {
      z_.next_out = &extra;
      z_.avail_out = 1;
      step();
      if (z_.avail_out == 0) fail("holds more data than its size says");
    }
    if (z_.avail_in > 0 || in_left_ > 0) fail("has compressed data after the end of its deflate stream");
  }

  void inflate_into(uint8_t* out, uint64_t n) {
    while (n > 0) {
      const auto chunk = static_cast<uInt>(std::min<uint64_t>(n, uint64_t{1} << 30));
      z_.next_out = out;
      z_.avail_out = chunk;
      while (z_.avail_out > 0) {
        if (ended_) fail("ends before its size (its deflate data is short)");
        step();
      }
      out += chunk;
      n -= chunk;
    }
  }

  // One inflate call, with input refilled first. Each call either consumes input,
  // produces output, ends the stream or fails, so no loop around it can hang.
  void step() {
    if (z_.avail_in == 0 && in_left_ > 0) refill();
    const int rc = inflate(&z_, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      ended_ = true;
    } else if (rc == Z_BUF_ERROR && z_.avail_in == 0 && in_left_ == 0) {
      fail("is cut short (its deflate data ends early)");
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      fail(cat("has corrupt deflate data (", z_.msg ? z_.msg : "zlib error", ")"));
    }
  }

  void refill() {
    const uint64_t n = std::min<uint64_t>(in_left_, in_.size());
    file_.read_at(m_.data_offset + (m_.compressed_size - in_left_), in_.data(), n, cat("member ", printable_name(m_.name)));
    in_left_ -= n;
    z_.next_in = in_.data();
    z_.avail_in = static_cast<uInt>(n);
  }

  std::vector<uint8_t> in_;
  uint64_t in_left_;
  z_stream z_;
  bool ended_ = false;
};

void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// The fields a local header and a central directory entry share, from the flags to the
// extra field's length: a stored member whose sizes are in its zip64 field.
void put_shared_fields(std::vector<uint8_t>& out, const ZipMember& m, uint16_t extra_length) {
  put_le(out, 0, 2);  // flags
  put_le(out, static_cast<uint16_t>(ZipMethod::kStored), 2);
  put_le(out, 0, 2);  // time
  put_le(out, kDosDate1980, 2);
  put_le(out, m.crc32, 4);
  put_le(out, kSaturated32, 4);  // compressed and uncompressed sizes
  put_le(out, kSaturated32, 4);
  put_le(out, m.name.size(), 2);
  put_le(out, extra_length, 2);
}

}  // namespace

RandomAccessFile::RandomAccessFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: a FIFO given as the path must not block the open (fstat refuses it).
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) input_error(path, ": cannot open (", std::strerror(errno), ")");
  struct stat st;
  if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd_);
    input_error(path, ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

RandomAccessFile::~RandomAccessFile() { close(fd_); }

void RandomAccessFile::read_at(uint64_t offset, void* out, uint64_t n, const std::string& what) const {
  if (offset > size_ || size_ - offset < n) input_error(path_, ": ", what, " lies past the end of the file (truncated?)");
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const ssize_t got = pread(fd_, p, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) input_error(path_, ": cannot read ", what, got < 0 ? cat(" (", std::strerror(errno), ")") : " (file shrank)");
    p += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

ZipReader::ZipReader(const std::string& path) : file_(path) {
  const Directory dir = read_end_records(file_);
  if (dir.offset > dir.end || dir.end - dir.offset != dir.size) {
    input_error(path, ": the central directory is not where the end record says (truncated or damaged)");
  }
  if (dir.entries > dir.size / kCentralHeaderBytes) {
    input_error(path, ": the end record claims ", dir.entries, " members in a ", dir.size, "-byte directory");
  }
  std::vector<uint8_t> bytes(dir.size);
  file_.read_at(dir.offset, bytes.data(), dir.size, "the central directory");
  Cursor c(bytes.data(), dir.size, path, "the central directory");
  std::set<std::string> names;
  members_.reserve(dir.entries);
  for (uint64_t i = 0; i < dir.entries; ++i) {
    ZipMember m = parse_central_entry(c, path);
    if (!names.insert(m.name).second) input_error(path, ": member ", printable_name(m.name), " appears twice");
    read_local_header(file_, dir.offset, &m);
    members_.push_back(std::move(m));
  }
  if (c.left() != 0) input_error(path, ": the central directory holds more than its ", dir.entries, " entries");

  // Members must not share bytes (overlapping members are how zip bombs multiply).
  std::vector<const ZipMember*> by_offset;
  for (const ZipMember& m : members_) by_offset.push_back(&m);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ZipMember* a, const ZipMember* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipMember& a = *by_offset[i - 1];
    if (a.data_offset + a.compressed_size > by_offset[i]->header_offset) {
      input_error(path, ": members ", printable_name(a.name), " and ", printable_name(by_offset[i]->name), " overlap");
    }
  }
}

const ZipMember* ZipReader::find(const std::string& name) const {
  for (const ZipMember& m : members_) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::unique_ptr<ZipMemberStream> ZipReader::open(const ZipMember& member) const {
  if (member.method == ZipMethod::kDeflated) return std::make_unique<DeflateStream>(file_, member);
  return std::make_unique<StoredStream>(file_, member);
}

ZipWriter::ZipWriter(std::string path, std::FILE* out) : path_(std::move(path)), out_(out) {}

void ZipWriter::write(const void* data, uint64_t n) {
  if (n > 0 && std::fwrite(data, 1, n, out_) != n) input_error(path_, ": cannot write (", std::strerror(errno), ")");
  offset_ += n;
}

void ZipWriter::add(const std::string& name, const std::vector<std::pair<const void*, uint64_t>>& parts) {
  if (name.empty() || name.size() > kSaturated16) input_error(path_, ": a member name of ", name.size(), " bytes");
  ZipMember m;
  m.name = name;
  m.header_offset = offset_;
  for (const auto& [data, n] : parts) {
    m.crc32 = crc32_update(m.crc32, data, n);
    m.size += n;
  }
  m.compressed_size = m.size;
  std::vector<uint8_t> header;
  put_le(header, kLocalHeaderSignature, 4);
  put_le(header, kZip64Version, 2);
  put_shared_fields(header, m, 4 + 16);
  header.insert(header.end(), name.begin(), name.end());
  put_le(header, kZip64ExtraId, 2);
  put_le(header, 16, 2);
  put_le(header, m.size, 8);
  put_le(header, m.compressed_size, 8);
  write(header.data(), header.size());
  for (const auto& [data, n] : parts) write(data, n);
  members_.push_back(std::move(m));
}

void ZipWriter::finish() {
  const uint64_t directory_offset = offset_;
  std::vector<uint8_t> d;
  for (const ZipMember& m : members_) {
    put_le(d, kCentralHeaderSignature, 4);
    put_le(d, kMadeByUnix | kZip64Version, 2);
    put_le(d, kZip64Version, 2);
    put_shared_fields(d, m, 4 + 24);
    put_le(d, 0, 2);  // comment
    put_le(d, 0, 2);  // disk
    put_le(d, 0, 2);  // internal attributes
    put_le(d, uint32_t{0100644} << 16, 4);  // a regular file, rw-r--r--
    put_le(d, kSaturated32, 4);             // the offset: in the zip64 field
    d.insert(d.end(), m.name.begin(), m.name.end());
    put_le(d, kZip64ExtraId, 2);
    put_le(d, 24, 2);
    put_le(d, m.size, 8);
    put_le(d, m.compressed_size, 8);
    put_le(d, m.header_offset, 8);
  }
  const uint64_t directory_size = d.size(), zip64_end_offset = directory_offset + directory_size;
  put_le(d, kZip64EndSignature, 4);
  put_le(d, kZip64EndBytes - 12, 8);  // the record's size after this field
  put_le(d, kMadeByUnix | kZip64Version, 2);
  put_le(d, kZip64Version, 2);
  put_le(d, 0, 4);  // this disk
  put_le(d, 0, 4);  // the directory's disk
  put_le(d, members_.size(), 8);
  put_le(d, members_.size(), 8);
  put_le(d, directory_size, 8);
  put_le(d, directory_offset, 8);
  put_le(d, kZip64LocatorSignature, 4);
  put_le(d, 0, 4);
  put_le(d, zip64_end_offset, 8);
  put_le(d, 1, 4);  // disks
  put_le(d, kEndSignature, 4);
  put_le(d, 0, 2);
  put_le(d, 0, 2);
  put_le(d, kSaturated16, 2);  // counts, size and offset: in the zip64 end record
  put_le(d, kSaturated16, 2);
  put_le(d, kSaturated32, 4);
  put_le(d, kSaturated32, 4);
  put_le(d, 0, 2);  // comment
  write(d.data(), d.size());
}

}  // namespace ddpm::eval
