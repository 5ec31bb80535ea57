#include "data/manifest.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <set>

#include "core/common.h"
#include "core/fs.h"
#include "data/checksum.h"

namespace ddpm::data {
namespace {

constexpr int64_t kMaxManifestBytes = int64_t{64} << 20;
constexpr int64_t kMaxShardBytes = int64_t{1} << 50;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

// Typed access with errors that name the file and the key.
class Reader {
 public:
  explicit Reader(std::string where) : where_(std::move(where)) {}

  YAML::Node require(const YAML::Node& map, const std::string& key, const std::string& ctx = "") const {
    const YAML::Node n = map[key];
    if (!n) fail(ctx, key, "is missing");
    return n;
  }
  int64_t integer(const YAML::Node& map, const std::string& key, int64_t lo, int64_t hi,
                  const std::string& ctx = "") const {
    const YAML::Node n = require(map, key, ctx);
    int64_t v = 0;
    try {
      if (!n.IsScalar()) fail(ctx, key, "is not a number");
      v = n.as<int64_t>();
    } catch (const YAML::Exception&) {
      fail(ctx, key, cat("is not an integer ('", n.Scalar(), "')"));
    }
    if (v < lo || v > hi) fail(ctx, key, cat("= ", v, " is outside ", lo, "..", hi));
    return v;
  }
  std::string text(const YAML::Node& map, const std::string& key, const std::string& ctx = "") const {
    const YAML::Node n = require(map, key, ctx);
    if (!n.IsScalar()) fail(ctx, key, "is not a string");
    return n.Scalar();
  }
  bool boolean(const YAML::Node& map, const std::string& key) const {
    const YAML::Node n = require(map, key);
    try {
      if (n.IsScalar()) return n.as<bool>();
    } catch (const YAML::Exception&) {
    }
    fail("", key, "is not true or false");
  }
  [[noreturn]] void fail(const std::string& ctx, const std::string& key, const std::string& what) const {
    input_error(where_, ": ", ctx, ctx.empty() ? "" : " ", "'", key, "' ", what);
  }
  [[noreturn]] void fail(const std::string& what) const { input_error(where_, ": ", what); }

 private:
  std::string where_;
};

uint32_t parse_hex32(const std::string& s, const Reader& r, const std::string& ctx) {
  if (s.size() != 8) r.fail(ctx, "checksum", cat("'", s, "' is not 8 hex digits"));
  uint32_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) r.fail(ctx, "checksum", cat("'", s, "' is not 8 lower-case hex digits"));
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  return v;
}

}  // namespace

std::string Manifest::to_yaml() const {
  YAML::Emitter out;
  out << YAML::Comment("ddpm dataset manifest, written last by ddpm_prepare (see docs/data.md)");
  out << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << kManifestFormat;
  out << YAML::Key << "version" << YAML::Value << kManifestVersion;
  out << YAML::Key << "source" << YAML::Value << YAML::DoubleQuoted << source;
  out << YAML::Key << "height" << YAML::Value << shape.height;
  out << YAML::Key << "width" << YAML::Value << shape.width;
  out << YAML::Key << "channels" << YAML::Value << shape.channels;
  out << YAML::Key << "count" << YAML::Value << count;
  out << YAML::Key << "labels" << YAML::Value << has_labels;
  out << YAML::Key << "shards" << YAML::Value << YAML::BeginSeq;
  for (const ShardEntry& s : shards) {
    out << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "file" << YAML::Value << s.file;
    out << YAML::Key << "count" << YAML::Value << s.count;
    out << YAML::Key << "bytes" << YAML::Value << s.bytes;
    out << YAML::Key << "checksum" << YAML::Value << YAML::DoubleQuoted << hex32(s.checksum);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  DDPM_CHECK(out.good(), out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

Manifest Manifest::parse(const std::string& text, const std::string& where) {
  const Reader r(where);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    r.fail(cat("not a valid manifest (", e.what(), ")"));
  }
  if (!root.IsMap()) r.fail("not a ddpm dataset manifest (expected a YAML mapping)");
  static const std::set<std::string> kKeys = {"format", "version", "source", "height", "width",
                                              "channels", "count", "labels", "shards"};
  for (const auto& kv : root) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
    if (!kKeys.count(key)) r.fail(cat("unknown key '", key, "'"));
  }
  if (r.text(root, "format") != kManifestFormat) {
    r.fail(cat("format is '", r.text(root, "format"), "', expected '", kManifestFormat, "'"));
  }
  const int64_t version = r.integer(root, "version", 0, INT32_MAX);
  if (version != kManifestVersion) r.fail(cat("version ", version, " is not supported (this build reads ", kManifestVersion, ")"));

  Manifest m;
  m.source = r.text(root, "source");
  m.shape.height = static_cast<int>(r.integer(root, "height", 1, kMaxSide));
  m.shape.width = static_cast<int>(r.integer(root, "width", 1, kMaxSide));
  m.shape.channels = static_cast<int>(r.integer(root, "channels", 1, 3));
  if (m.shape.channels == 2) r.fail("", "channels", "= 2 is not supported (1 or 3)");
  m.count = r.integer(root, "count", 1, kMaxImages);
  m.has_labels = r.boolean(root, "labels");

  const YAML::Node shards = r.require(root, "shards");
  if (!shards.IsSequence() || shards.size() == 0) r.fail("", "shards", "is not a non-empty list");
  if (static_cast<int64_t>(shards.size()) > kMaxShards) r.fail("", "shards", cat("lists more than ", kMaxShards));
  const int64_t num_shards = static_cast<int64_t>(shards.size());
  int64_t total = 0;
  for (int64_t i = 0; i < num_shards; ++i) {
    const YAML::Node s = shards[static_cast<size_t>(i)];
    const std::string ctx = cat("shard ", i);
    if (!s.IsMap()) r.fail(cat(ctx, " is not a mapping"));
    ShardEntry e;
    e.file = r.text(s, "file", ctx);
    // Only the canonical name: a manifest cannot point outside its directory.
    if (e.file != shard_file_name(i, num_shards)) {
      r.fail(ctx, "file", cat("is '", e.file, "', expected '", shard_file_name(i, num_shards), "'"));
    }
    e.count = r.integer(s, "count", 0, kMaxImagesPerShard, ctx);
    e.bytes = r.integer(s, "bytes", 1, kMaxShardBytes, ctx);
    e.checksum = parse_hex32(r.text(s, "checksum", ctx), r, ctx);
    total += e.count;
    m.shards.push_back(e);
  }
  if (total != m.count) r.fail(cat("the shards hold ", total, " images but count is ", m.count));
  return m;
}

Manifest Manifest::read_dir(const std::string& dir) {
  const std::string path = fs::join(dir, kManifestName);
  if (!fs::is_dir(dir)) input_error(dir, ": no such dataset directory");
  if (!fs::exists(path)) input_error(path, ": missing (not a dataset prepared by ddpm_prepare, or an unfinished one)");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) input_error(path, ": cannot read the file");
  std::string text;
  char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    text.append(buf, got);
    if (static_cast<int64_t>(text.size()) > kMaxManifestBytes) {
      std::fclose(f);
      input_error(path, ": larger than ", kMaxManifestBytes, " bytes (not a manifest)");
    }
  }
  std::fclose(f);
  return parse(text, path);
}

uint32_t Manifest::fingerprint() const {
  uint32_t crc = 0;
  for (const ShardEntry& s : shards) {
    const uint8_t le[4] = {static_cast<uint8_t>(s.checksum), static_cast<uint8_t>(s.checksum >> 8),
                           static_cast<uint8_t>(s.checksum >> 16), static_cast<uint8_t>(s.checksum >> 24)};
    crc = crc32_of(le, 4, crc);
  }
  return crc;
}

}  // namespace ddpm::data
