// The zip container of .npz files, as Python's zipfile writes it for numpy: members
// stored or deflated, zip64 records where sizes, offsets or the member count need them.
// The reader trusts nothing in the file: every size and offset is checked against the
// file's size before anything is allocated, members must lie before the central
// directory without overlapping, and each member's CRC-32 is checked when it has been
// read to its end. Any problem is an InputError "<file>: <problem>".
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ddpm::eval {

// A file read with pread at offsets that are checked against its size.
class RandomAccessFile {
 public:
  explicit RandomAccessFile(const std::string& path);
  ~RandomAccessFile();
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset; `what` names the part for the error message.
  void read_at(uint64_t offset, void* out, uint64_t n, const std::string& what) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A member name fit for a one-line message: quoted, non-printable bytes as \xNN.
std::string printable_name(const std::string& name);

enum class ZipMethod : uint16_t { kStored = 0, kDeflated = 8 };

// One member as its central directory entry and local header describe it.
struct ZipMember {
  std::string name;
  ZipMethod method = ZipMethod::kStored;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;           // uncompressed
  uint64_t header_offset = 0;  // of the local header
  uint64_t data_offset = 0;    // of the (compressed) data, after the local header
};

// A member's uncompressed bytes, front to back.
class ZipMemberStream {
 public:
  virtual ~ZipMemberStream() = default;
  // Reads exactly n bytes (an InputError if the member has fewer).
  virtual void read(void* out, uint64_t n) = 0;
  // Bytes not read yet.
  virtual uint64_t remaining() const = 0;
  // Reads whatever is left and checks the member's CRC-32 and that its compressed data
  // ended where the directory says. Call it after the last read.
  virtual void finish() = 0;
};

class ZipReader {
 public:
  // Opens the archive and checks its directory and every member's local header.
  explicit ZipReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<ZipMember>& members() const { return members_; }
  // nullptr when there is no member of that name.
  const ZipMember* find(const std::string& name) const;
  // The member's bytes; the stream reads from this reader's file, which must outlive it.
  std::unique_ptr<ZipMemberStream> open(const ZipMember& member) const;

 private:
  RandomAccessFile file_;
  std::vector<ZipMember> members_;
};

// Writes a zip archive of stored members to a file that the caller opened; every member
// and the directory carry zip64 records (readers take them at any size, and one layout
// serves members past 4 GiB too). Dates are fixed (1980-01-01), so equal content makes
// equal files.
class ZipWriter {
 public:
  // `path` names the file in error messages; `out` receives the bytes.
  ZipWriter(std::string path, std::FILE* out);
  // One member whose bytes are the concatenation of `parts`.
  void add(const std::string& name, const std::vector<std::pair<const void*, uint64_t>>& parts);
  // Writes the central directory; the archive is complete after it.
  void finish();

 private:
  void write(const void* data, uint64_t n);

  std::string path_;
  std::FILE* out_;
  uint64_t offset_ = 0;
  std::vector<ZipMember> members_;
};

}  // namespace ddpm::eval
