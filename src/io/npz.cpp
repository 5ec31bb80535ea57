#include "io/npz.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/common.h"
#include "core/fs.h"

namespace ddpm {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy data is read and written as little-endian");

constexpr const char* kNpySuffix = ".npy";
// read() grows its buffer by at most this much at a time, as the data arrives: a
// member that claims more than it holds fails before we have allocated its claim.
constexpr uint64_t kReadChunkBytes = uint64_t{64} << 20;

template <typename Out>
std::vector<Out> convert(const NpyArray& a) {
  std::vector<Out> out(static_cast<size_t>(a.numel()));
  const auto each = [&](auto element) {
    using T = decltype(element);
    for (size_t i = 0; i < out.size(); ++i) {
      T v;
      std::memcpy(&v, a.bytes.data() + i * sizeof(T), sizeof(T));
      out[i] = static_cast<Out>(v);
    }
  };
  switch (a.dtype) {
    case NpyDType::kBool:
      for (size_t i = 0; i < out.size(); ++i) out[i] = a.bytes[i] != 0 ? Out{1} : Out{0};
      break;
    case NpyDType::kUInt8: each(uint8_t{}); break;
    case NpyDType::kInt8: each(int8_t{}); break;
    case NpyDType::kUInt16: each(uint16_t{}); break;
    case NpyDType::kInt16: each(int16_t{}); break;
    case NpyDType::kUInt32: each(uint32_t{}); break;
    case NpyDType::kInt32: each(int32_t{}); break;
    case NpyDType::kUInt64: each(uint64_t{}); break;
    case NpyDType::kInt64: each(int64_t{}); break;
    case NpyDType::kFloat32: each(float{}); break;
    case NpyDType::kFloat64: each(double{}); break;
    case NpyDType::kUnicode: throw Error("npz: strings are not numbers");
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The archive: one stored member NAME.npy a view, its npy header then its elements.
void write_archive(const std::string& tmp, const std::string& path,
                   const std::vector<std::pair<std::string, NpyView>>& arrays) {
  if (arrays.empty()) input_error(path, ": no arrays to write");
  std::set<std::string> names;
  std::vector<std::string> headers;
  headers.reserve(arrays.size());  // the entries point into them
  std::vector<ZipEntry> entries;
  for (const auto& [name, view] : arrays) {
    if (name.empty() || !names.insert(name).second) input_error(path, ": array name '", name, "' is empty or repeated");
    const int64_t n = checked_numel(view.shape, cat(path, ": array '", name, "'"));
    const int64_t item_bytes = view.dtype == NpyDType::kUnicode ? view.item_bytes : dtype_bytes(view.dtype);
    headers.push_back(format_npy_header(view.dtype, view.shape, item_bytes));
    const uint64_t data_bytes = static_cast<uint64_t>(n) * static_cast<uint64_t>(item_bytes);
    entries.push_back({name + kNpySuffix, {{headers.back().data(), headers.back().size()}, {view.data, data_bytes}}});
  }
  write_stored_zip(tmp, path, entries);
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

std::vector<double> NpyArray::to_doubles() const { return convert<double>(*this); }
std::vector<float> NpyArray::to_floats() const { return convert<float>(*this); }

NpyView NpyView::of(const std::vector<double>& v, std::vector<int64_t> shape) {
  return {NpyDType::kFloat64, std::move(shape), v.data()};
}
NpyView NpyView::of(const std::vector<float>& v, std::vector<int64_t> shape) {
  return {NpyDType::kFloat32, std::move(shape), v.data()};
}
NpyView NpyView::of(const std::vector<uint8_t>& v, std::vector<int64_t> shape) {
  return {NpyDType::kUInt8, std::move(shape), v.data()};
}
NpyView NpyView::of(const std::vector<int64_t>& v, std::vector<int64_t> shape) {
  return {NpyDType::kInt64, std::move(shape), v.data()};
}
NpyView NpyView::of(const std::u32string& text) {
  DDPM_CHECK(!text.empty(), "an empty npy string");
  return {NpyDType::kUnicode, {}, text.data(), static_cast<int64_t>(4 * text.size())};
}

NpyRowReader::NpyRowReader(std::unique_ptr<ZipMemberStream> member, const std::string& where)
    : member_(std::move(member)), header_(read_npy_header(*member_, where)) {
  rows_ = header_.shape.empty() ? 1 : header_.shape[0];
  int64_t row_elements = 1;
  for (size_t i = 1; i < header_.shape.size(); ++i) row_elements *= header_.shape[i];
  row_bytes_ = static_cast<uint64_t>(row_elements) * static_cast<uint64_t>(header_.item_bytes);
  if (rows_ == 0) member_->finish();
}

int64_t NpyRowReader::read(int64_t max_rows, void* out) {
  const int64_t n = std::min(max_rows, rows_left());
  if (n <= 0) return 0;
  member_->read(out, static_cast<uint64_t>(n) * row_bytes_);
  rows_read_ += n;
  if (rows_left() == 0) member_->finish();
  return n;
}

NpzReader::NpzReader(const std::string& path) : zip_(path) {
  // Members "x" and "x.npy" would both be array x (np.load would show one of them).
  std::set<std::string> seen;
  for (const std::string& name : names()) {
    if (!seen.insert(name).second) input_error(path, ": two members hold array ", printable_name(name));
  }
}

std::vector<std::string> NpzReader::names() const {
  std::vector<std::string> out;
  for (const ZipMember& m : zip_.members()) {
    out.push_back(ends_with(m.name, kNpySuffix) ? m.name.substr(0, m.name.size() - 4) : m.name);
  }
  return out;
}

const ZipMember* NpzReader::find(const std::string& name) const {
  const ZipMember* m = zip_.find(name + kNpySuffix);
  return m ? m : zip_.find(name);
}

const ZipMember& NpzReader::member(const std::string& name) const {
  if (const ZipMember* m = find(name)) return *m;
  std::string have;
  for (const std::string& n : names()) have += (have.empty() ? "" : ", ") + printable_name(n);
  input_error(path(), ": has no array ", printable_name(name), " (it has ", have.empty() ? "none" : have, ")");
}

std::string NpzReader::where(const ZipMember& m) const { return cat(path(), ": member ", printable_name(m.name)); }

NpyHeader NpzReader::header(const std::string& name) const {
  const ZipMember& m = member(name);
  return read_npy_header(*zip_.open(m), where(m));
}

NpyRowReader NpzReader::rows(const std::string& name) const {
  const ZipMember& m = member(name);
  return NpyRowReader(zip_.open(m), where(m));
}

NpyArray NpzReader::read(const std::string& name) const {
  const ZipMember& m = member(name);
  const std::unique_ptr<ZipMemberStream> stream = zip_.open(m);
  const NpyHeader h = read_npy_header(*stream, where(m));
  NpyArray a;
  a.dtype = h.dtype;
  a.item_bytes = h.item_bytes;
  a.shape = h.shape;
  while (a.bytes.size() < h.data_bytes()) {
    const uint64_t done = a.bytes.size(), n = std::min(kReadChunkBytes, h.data_bytes() - done);
    a.bytes.resize(done + n);
    stream->read(a.bytes.data() + done, n);
  }
  stream->finish();
  return a;
}

NpyArray NpzReader::read_floating(const std::string& name, size_t rank) const {
  NpyArray a = read(name);
  if (a.dtype != NpyDType::kFloat32 && a.dtype != NpyDType::kFloat64) {
    input_error(path(), ": array ", printable_name(name), " is '", dtype_descr(a.dtype), "', not float32 or float64");
  }
  if (a.shape.size() != rank) {
    input_error(path(), ": array ", printable_name(name), " has shape ", shape_string(a.shape), ", not ", rank,
                " dimension(s)");
  }
  return a;
}

std::string NpzReader::read_text(const std::string& name) const {
  const NpyArray a = read(name);
  if (a.dtype != NpyDType::kUnicode || !a.shape.empty()) {
    input_error(path(), ": array ", printable_name(name), " is '", element_descr(a.dtype, a.item_bytes), "' of shape ",
                shape_string(a.shape), ", not a string");
  }
  std::string text;
  for (int64_t i = 0; i < a.item_bytes / 4; ++i) {
    uint32_t c;
    std::memcpy(&c, a.bytes.data() + 4 * i, 4);
    if (c == 0) break;  // numpy pads with NULs
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) input_error(path(), ": array ", printable_name(name), " is not text");
    // UTF-8: 1 to 4 bytes by the code point's size.
    if (c < 0x80) {
      text += static_cast<char>(c);
    } else if (c < 0x800) {
      text += {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
    } else if (c < 0x10000) {
      text += {static_cast<char>(0xE0 | (c >> 12)), static_cast<char>(0x80 | ((c >> 6) & 0x3F)),
               static_cast<char>(0x80 | (c & 0x3F))};
    } else {
      text += {static_cast<char>(0xF0 | (c >> 18)), static_cast<char>(0x80 | ((c >> 12) & 0x3F)),
               static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
    }
  }
  return text;
}

int64_t NpzReader::read_integer(const std::string& name) const {
  const NpyArray a = read(name);
  const bool integer = a.dtype != NpyDType::kFloat32 && a.dtype != NpyDType::kFloat64 && a.dtype != NpyDType::kUnicode &&
                       a.dtype != NpyDType::kBool && a.dtype != NpyDType::kUInt64;
  if (!integer || !a.shape.empty()) {
    input_error(path(), ": array ", printable_name(name), " is '", element_descr(a.dtype, a.item_bytes), "' of shape ",
                shape_string(a.shape), ", not an integer");
  }
  return convert<int64_t>(a)[0];
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyView>>& arrays,
               Overwrite overwrite) {
  fs::write_atomically(path, [&](const std::string& tmp) { write_archive(tmp, path, arrays); }, overwrite);
}

}  // namespace ddpm
