// The .npy format (numpy/lib/format.py): the magic "\x93NUMPY", a version (1.0, 2.0 or
// 3.0), the length of a header that is a Python dict literal
//   {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
// padded with spaces to a multiple of 64 bytes, then the elements in C order. The
// header parser accepts exactly that dict (any key order, either quote), little-endian
// and one-byte dtypes and little-endian unicode strings ('<U8': 8 UTF-32 code units an
// element), C order; everything else is an InputError that says why.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/zip.h"

namespace ddpm {

enum class NpyDType {
  kBool, kUInt8, kInt8, kUInt16, kInt16, kUInt32, kInt32, kUInt64, kInt64, kFloat32, kFloat64,
  kUnicode,  // '<Un': n UTF-32 code units an element, NUL-padded (statistics' provenance)
};

// numpy's descr: "|u1", "<f8", ... ("<U" for kUnicode, whose length is the element's).
const char* dtype_descr(NpyDType dtype);
// The size of an element; of one code unit for kUnicode.
int64_t dtype_bytes(NpyDType dtype);
// The full descr of elements of `item_bytes` bytes ("<U5" for a kUnicode of 20 bytes).
std::string element_descr(NpyDType dtype, int64_t item_bytes);

struct NpyHeader {
  NpyDType dtype = NpyDType::kFloat64;
  int64_t item_bytes = 8;      // bytes an element: dtype_bytes(dtype), or a string's length
  std::vector<int64_t> shape;  // () for a scalar
  uint64_t header_bytes = 0;   // magic to padding: where the elements start

  int64_t numel() const;
  uint64_t data_bytes() const { return static_cast<uint64_t>(numel()) * static_cast<uint64_t>(item_bytes); }
};

// "[2, 3]", "[]" for a scalar.
std::string shape_string(const std::vector<int64_t>& shape);

// The element count of a shape from outside (a file, a caller): an InputError naming
// `where` if a dimension is negative or the count overflows (more than 2^62 bytes of
// 8-byte elements).
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& where);

// Reads the header from the start of a member, and checks that the member holds exactly
// the elements it describes. `where` ("file: member 'x.npy'") starts each message.
NpyHeader read_npy_header(ZipMemberStream& member, const std::string& where);

// The header numpy writes for this dtype and shape: version 1.0 (2.0 when it does not
// fit in 64 KiB), padded with spaces and a newline to a multiple of 64 bytes.
// item_bytes: a kUnicode element's size (4 per code unit); ignored for other dtypes.
std::string format_npy_header(NpyDType dtype, const std::vector<int64_t>& shape, int64_t item_bytes = 0);

}  // namespace ddpm
