// A folder of PNG and JPEG files (e.g. CelebA-HQ), found recursively. The order is the
// byte order of the paths relative to the folder, so a dataset does not depend on the
// order the file system lists entries in. Hidden entries and symbolic links to folders
// are not followed.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include "core/common.h"
#include "core/fs.h"
#include "data/decode.h"
#include "data/source.h"

namespace ddpm::data {
namespace {

bool has_image_extension(const std::string& name) {
  const size_t dot = name.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "png" || ext == "jpg" || ext == "jpeg";
}

// Appends the image files under root/rel (relative paths) to *out.
void list_images(const std::string& root, const std::string& rel, std::vector<std::string>* out) {
  const std::string dir = rel.empty() ? root : fs::join(root, rel);
  DIR* d = opendir(dir.c_str());
  if (!d) input_error(dir, ": cannot list the directory");
  std::vector<std::string> subdirs;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    const std::string rel_path = rel.empty() ? name : rel + "/" + name;
    struct stat link_st, st;
    const std::string full = fs::join(root, rel_path);
    if (lstat(full.c_str(), &link_st) != 0) continue;
    if (S_ISDIR(link_st.st_mode)) {
      subdirs.push_back(rel_path);
    } else if (has_image_extension(name) && stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      out->push_back(rel_path);
    }
  }
  closedir(d);
  for (const std::string& sub : subdirs) list_images(root, sub, out);
}

class FolderSource : public ImageSource {
 public:
  explicit FolderSource(const std::string& dir) : dir_(dir) {
    list_images(dir, "", &files_);
    if (files_.empty()) input_error(dir, ": no PNG or JPEG files found (searched recursively)");
    std::sort(files_.begin(), files_.end());
    description_ = cat("folder ", fs::basename(dir));
  }

  std::string description() const override { return description_; }
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  bool has_labels() const override { return false; }

  // Grey only if every image is grey, judged from the headers (the first 64 KiB of each
  // file, all of it for a JPEG with a long preamble). Unreadable files do not count.
  int native_channels() override {
    bool any_grey = false;
    std::vector<uint8_t> head;
    std::string error;
    for (const std::string& rel : files_) {
      const std::string path = fs::join(dir_, rel);
      if (!read_file_bytes(path, 64 << 10, &head, &error)) continue;
      int channels = probe_channels(head.data(), head.size());
      if (channels == 0 && read_file_bytes(path, -1, &head, &error)) channels = probe_channels(head.data(), head.size());
      if (channels == 3) return 3;
      any_grey = any_grey || channels == 1;
    }
    return any_grey ? 1 : 3;
  }

  bool next(SourceItem* item) override {
    if (next_ >= size()) return false;
    const std::string& rel = files_[static_cast<size_t>(next_++)];
    item->name = fs::join(dir_, rel);
    item->raw = Image();
    item->label = -1;
    item->read_error.clear();
    if (!read_file_bytes(item->name, -1, &item->encoded, &item->read_error)) item->encoded.clear();
    return true;
  }

 private:
  std::string dir_, description_;
  std::vector<std::string> files_;  // relative paths, sorted
  int64_t next_ = 0;
};

}  // namespace

std::unique_ptr<ImageSource> open_folder(const std::string& dir) {
  if (!fs::is_dir(dir)) input_error(dir, ": not a directory");
  return std::make_unique<FolderSource>(dir);
}

}  // namespace ddpm::data
