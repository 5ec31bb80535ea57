// .npz files as numpy writes them (np.savez: stored, np.savez_compressed: deflate): a
// zip archive whose member "NAME.npy" holds array NAME. Reading checks everything
// (libzip the archive, eval/zip.h; eval/npy.h each array) and grows its buffers only as
// data arrives; arrays can be read whole or streamed along their first axis. Writing
// makes a stored archive (zip64 records where sizes need them) through fs::
// write_atomically, and refuses to replace an existing file unless asked. Errors are
// InputErrors "<file>: <problem>".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/fs.h"
#include "io/npy.h"
#include "io/zip.h"

namespace ddpm {

// An array read from a file: its elements in C order, little-endian.
struct NpyArray {
  NpyDType dtype = NpyDType::kFloat64;
  int64_t item_bytes = 8;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numel() const;
  // The elements converted (any numeric dtype; bool as 0 and 1).
  std::vector<double> to_doubles() const;
  std::vector<float> to_floats() const;
};

// An array in the caller's memory, to be written (nothing is copied).
struct NpyView {
  NpyDType dtype;
  std::vector<int64_t> shape;
  const void* data;
  int64_t item_bytes = 0;  // kUnicode only: 4 per code unit

  static NpyView of(const std::vector<double>& v, std::vector<int64_t> shape);
  static NpyView of(const std::vector<float>& v, std::vector<int64_t> shape);
  static NpyView of(const std::vector<uint8_t>& v, std::vector<int64_t> shape);
  static NpyView of(const std::vector<int64_t>& v, std::vector<int64_t> shape);
  static NpyView of(const NpyArray& a) { return {a.dtype, a.shape, a.bytes.data(), a.item_bytes}; }
  // A string scalar ('<Un', as np.array('text') saves it); text must not be empty.
  static NpyView of(const std::u32string& text);
};

// Streams one array along its first axis (a scalar is one row). Its reader must
// outlive it.
class NpyRowReader {
 public:
  NpyRowReader(std::unique_ptr<ZipMemberStream> member, const std::string& where);

  const NpyHeader& header() const { return header_; }
  int64_t rows() const { return rows_; }
  int64_t rows_left() const { return rows_ - rows_read_; }
  uint64_t row_bytes() const { return row_bytes_; }
  // Reads min(max_rows, rows_left()) rows into out (room for max_rows rows) and returns
  // how many; the member's CRC-32 is checked with the last row.
  int64_t read(int64_t max_rows, void* out);

 private:
  std::unique_ptr<ZipMemberStream> member_;
  NpyHeader header_;
  int64_t rows_ = 0, rows_read_ = 0;
  uint64_t row_bytes_ = 0;
};

class NpzReader {
 public:
  explicit NpzReader(const std::string& path);

  const std::string& path() const { return zip_.path(); }
  // The arrays' names (members without ".npy"), in the archive's order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  // Dtype and shape, from the header alone (the data is not read or checked).
  NpyHeader header(const std::string& name) const;
  NpyArray read(const std::string& name) const;
  NpyRowReader rows(const std::string& name) const;

  // read(name) of an array that must be float32 or float64 and of this rank (an
  // InputError naming the file and the array otherwise).
  NpyArray read_floating(const std::string& name, size_t rank) const;
  // A string scalar (numpy's '<Un', trailing NULs dropped) as UTF-8, or an integer
  // scalar; an InputError naming the file and the array otherwise.
  std::string read_text(const std::string& name) const;
  int64_t read_integer(const std::string& name) const;

 private:
  const ZipMember* find(const std::string& name) const;
  const ZipMember& member(const std::string& name) const;
  std::string where(const ZipMember& m) const;

  ZipReader zip_;
};

using fs::Overwrite;

// Writes arrays (name, array) to an uncompressed .npz that np.load reads. With
// Overwrite::kRefuse an existing file is an InputError and stays as it was.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyView>>& arrays,
               Overwrite overwrite = Overwrite::kRefuse);

}  // namespace ddpm
