#include "io/npy.h"

#include <cstring>
#include <tuple>
#include <utility>

#include "core/common.h"

namespace ddpm {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
// numpy writes headers of a few hundred bytes and refuses to read ones over 10,000
// (np.load's max_header_size); 64 KiB leaves room and bounds what we read.
constexpr uint64_t kMaxHeaderTextBytes = 1 << 16;
constexpr uint64_t kHeaderAlignment = 64;
// numpy's NPY_MAXDIMS is 32 (64 from numpy 2.0).
constexpr size_t kMaxRank = 64;
constexpr int64_t kMaxBytes = int64_t{1} << 62;

struct DTypeInfo {
  NpyDType dtype;
  const char* descr;
  int64_t bytes;
};
constexpr DTypeInfo kDTypes[] = {
    {NpyDType::kBool, "|b1", 1},    {NpyDType::kUInt8, "|u1", 1},   {NpyDType::kInt8, "|i1", 1},
    {NpyDType::kUInt16, "<u2", 2},  {NpyDType::kInt16, "<i2", 2},   {NpyDType::kUInt32, "<u4", 4},
    {NpyDType::kInt32, "<i4", 4},   {NpyDType::kUInt64, "<u8", 8},  {NpyDType::kInt64, "<i8", 8},
    {NpyDType::kFloat32, "<f4", 4}, {NpyDType::kFloat64, "<f8", 8},  {NpyDType::kUnicode, "<U", 4},
};
// numpy's longest strings are far shorter; this bounds a header's claim.
constexpr int64_t kMaxUnicodeChars = int64_t{1} << 20;

const DTypeInfo& info_of(NpyDType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  throw Error("npy: unknown NpyDType");
}

// The dtype and element size a descr names.
std::pair<NpyDType, int64_t> dtype_of_descr(const std::string& descr, const std::string& where) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype != NpyDType::kUnicode && descr == info.descr) return {info.dtype, info.bytes};
  }
  if (descr.size() > 2 && descr.compare(0, 2, "<U") == 0 &&
      descr.find_first_not_of("0123456789", 2) == std::string::npos && descr.size() <= 9) {
    const int64_t chars = std::stoll(descr.substr(2));
    if (chars >= 1 && chars <= kMaxUnicodeChars) return {NpyDType::kUnicode, 4 * chars};
  }
  if (!descr.empty() && descr[0] == '>') {
    input_error(where, ": big-endian data ('", descr, "') is not supported (save it as '<", descr.substr(1), "')");
  }
  input_error(where, ": dtype '", descr, "' is not supported (bool, integers, float32, float64 and unicode are)");
}

// The header's dict literal, as numpy's writers produce it.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& where) : text_(text), where_(where) {}

  NpyHeader parse() {
    bool have_descr = false, have_order = false, have_shape = false;
    NpyHeader h;
    expect('{');
    while (!take('}')) {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr" && !have_descr) {
        if (peek() == '[') refuse("structured dtypes are not supported");
        std::tie(h.dtype, h.item_bytes) = dtype_of_descr(string_literal(), where_);
        have_descr = true;
      } else if (key == "fortran_order" && !have_order) {
        if (boolean()) refuse("Fortran-ordered arrays are not supported (save it with np.ascontiguousarray)");
        have_order = true;
      } else if (key == "shape" && !have_shape) {
        h.shape = shape_tuple();
        have_shape = true;
      } else {
        fail(cat("unexpected key '", key, "'"));
      }
      if (!take(',')) {
        expect('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) fail("text after the closing brace");
    if (!have_descr || !have_order || !have_shape) fail("the header lacks descr, fortran_order or shape");
    return h;
  }

 private:
  // Text that is not the header numpy writes.
  [[noreturn]] void fail(const std::string& what) const {
    input_error(where_, ": bad npy header (", what, ")");
  }
  // A well-formed header of an array this reader does not take.
  [[noreturn]] void refuse(const std::string& what) const { input_error(where_, ": ", what); }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' || text_[pos_] == '\n')) {
      ++pos_;
    }
  }
  char peek() {
    skip_space();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  bool take(char c) {
    if (peek() != c) return false;  // peek() is NUL at the end
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!take(c)) fail(cat("expected '", c, "' at byte ", pos_));
  }
  std::string string_literal() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(cat("expected a string at byte ", pos_));
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail("an unterminated string");
    std::string s = text_.substr(pos_ + 1, end - pos_ - 1);
    if (s.find('\\') != std::string::npos) fail("escapes in a string");
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    skip_space();
    for (const auto& [word, value] : {std::pair<const char*, bool>{"True", true}, {"False", false}}) {
      if (text_.compare(pos_, std::strlen(word), word) == 0) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    fail("fortran_order is not True or False");
  }
  int64_t dimension() {
    skip_space();
    const size_t start = pos_;
    int64_t v = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (v > (kMaxBytes - 9) / 10) fail("a dimension is too large");
      v = v * 10 + (text_[pos_++] - '0');
    }
    if (pos_ == start) fail(cat("expected a dimension at byte ", pos_));
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2's long literals
    return v;
  }
  std::vector<int64_t> shape_tuple() {
    expect('(');
    std::vector<int64_t> shape;
    while (!take(')')) {
      if (shape.size() == kMaxRank) fail(cat("more than ", kMaxRank, " dimensions"));
      shape.push_back(dimension());
      if (!take(',')) {
        expect(')');
        break;
      }
    }
    return shape;
  }

  const std::string& text_;
  const std::string& where_;
  size_t pos_ = 0;
};

uint64_t read_le(ZipMemberStream& member, int bytes) {
  uint8_t b[4] = {};
  member.read(b, static_cast<uint64_t>(bytes));
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

}  // namespace

const char* dtype_descr(NpyDType dtype) { return info_of(dtype).descr; }
int64_t dtype_bytes(NpyDType dtype) { return info_of(dtype).bytes; }

std::string element_descr(NpyDType dtype, int64_t item_bytes) {
  return dtype == NpyDType::kUnicode ? cat(dtype_descr(dtype), item_bytes / 4) : dtype_descr(dtype);
}

int64_t NpyHeader::numel() const {
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += cat(i ? ", " : "", shape[i]);
  return s + "]";
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& where) {
  int64_t n = 1;
  for (const int64_t d : shape) {
    if (d < 0 || (d > 0 && n > kMaxBytes / 8 / d)) {
      input_error(where, ": shape ", shape_string(shape), " is negative or too large");
    }
    n *= d;
  }
  return n;
}

NpyHeader read_npy_header(ZipMemberStream& member, const std::string& where) {
  const uint64_t member_bytes = member.remaining();
  if (member_bytes < kMagicBytes + 4) input_error(where, ": not an npy array (", member_bytes, " bytes)");
  char magic[kMagicBytes];
  member.read(magic, kMagicBytes);
  if (std::memcmp(magic, kMagic, kMagicBytes) != 0) input_error(where, ": not an npy array (no \\x93NUMPY magic)");
  uint8_t version[2];
  member.read(version, 2);
  if (version[0] < 1 || version[0] > 3 || version[1] != 0) {
    input_error(where, ": npy format version ", int{version[0]}, ".", int{version[1]},
                " is not supported (1.0, 2.0 and 3.0 are)");
  }
  // Version 1.0 has a 2-byte header length, 2.0 and 3.0 (UTF-8 text) a 4-byte one.
  const int length_bytes = version[0] == 1 ? 2 : 4;
  if (member.remaining() < static_cast<uint64_t>(length_bytes)) input_error(where, ": the npy header is cut short");
  const uint64_t text_bytes = read_le(member, length_bytes);
  if (text_bytes > kMaxHeaderTextBytes || text_bytes > member.remaining()) {
    input_error(where, ": the npy header claims ", text_bytes, " bytes (the member has ", member.remaining(),
                " left; at most ", kMaxHeaderTextBytes, " are read)");
  }
  std::string text(text_bytes, '\0');
  member.read(text.data(), text_bytes);

  NpyHeader h = HeaderParser(text, where).parse();
  if (checked_numel(h.shape, where) > kMaxBytes / h.item_bytes) {
    input_error(where, ": shape ", shape_string(h.shape), " of '", element_descr(h.dtype, h.item_bytes),
                "' is too large");
  }
  h.header_bytes = kMagicBytes + 2 + static_cast<uint64_t>(length_bytes) + text_bytes;
  if (h.data_bytes() != member.remaining()) {
    input_error(where, ": holds ", member.remaining(), " bytes of data, but shape ", shape_string(h.shape), " of '",
                element_descr(h.dtype, h.item_bytes), "' needs ", h.data_bytes());
  }
  return h;
}

std::string format_npy_header(NpyDType dtype, const std::vector<int64_t>& shape, int64_t item_bytes) {
  DDPM_CHECK(dtype != NpyDType::kUnicode || (item_bytes >= 4 && item_bytes % 4 == 0), "a unicode element of ",
             item_bytes, " bytes");
  // Python's repr of the shape tuple: (), (3,), (2, 3).
  std::string tuple = "(";
  for (size_t i = 0; i < shape.size(); ++i) tuple += cat(i ? ", " : "", shape[i]);
  tuple += shape.size() == 1 ? ",)" : ")";
  std::string text =
      cat("{'descr': '", element_descr(dtype, item_bytes), "', 'fortran_order': False, 'shape': ", tuple, ", }");
  for (const int length_bytes : {2, 4}) {
    const uint64_t preamble = kMagicBytes + 2 + static_cast<uint64_t>(length_bytes);
    const uint64_t padded = (preamble + text.size() + 1 + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
    const uint64_t text_bytes = padded - preamble;
    if (length_bytes == 2 && text_bytes > 0xFFFF) continue;
    std::string out(kMagic, kMagicBytes);
    out += static_cast<char>(length_bytes == 2 ? 1 : 2);
    out += '\0';
    for (int i = 0; i < length_bytes; ++i) out += static_cast<char>((text_bytes >> (8 * i)) & 0xFF);
    out += text;
    out.append(text_bytes - text.size() - 1, ' ');
    out += '\n';
    return out;
  }
  throw Error("npy: header too long");
}

}  // namespace ddpm
