#include "fuzz_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ddpm::fuzz {

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    std::string d = base + "/ddpm-fuzz-" + std::to_string(getpid());
    mkdir(d.c_str(), 0700);
    // Not removed at exit: libFuzzer leaves through _exit on a crash anyway, and the
    // next run with this pid reuses it.
    return d;
  }();
  return dir;
}

std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

std::string write_scratch(const std::string& name, const std::string& bytes) {
  return write_scratch(name, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

void remove_scratch(const std::string& name) {
  std::error_code ignored;
  std::filesystem::remove_all(scratch_dir() + "/" + name, ignored);
}

std::string fresh_scratch_dir(const std::string& name) {
  remove_scratch(name);
  const std::string path = scratch_dir() + "/" + name;
  if (mkdir(path.c_str(), 0700) != 0) {
    std::fprintf(stderr, "fuzz: cannot make %s\n", path.c_str());
    std::abort();
  }
  return path;
}

std::vector<std::string> split_files(const uint8_t* data, size_t size, size_t parts) {
  const std::string all(reinterpret_cast<const char*>(data), size), sep = kFileSeparator;
  std::vector<std::string> out;
  size_t begin = 0;
  while (out.size() + 1 < parts) {
    const size_t end = all.find(sep, begin);
    if (end == std::string::npos) break;
    out.push_back(all.substr(begin, end - begin));
    begin = end + sep.size();
  }
  out.push_back(begin <= all.size() ? all.substr(begin) : "");
  out.resize(parts);
  return out;
}

std::string join_files(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? kFileSeparator : "") + parts[i];
  return out;
}

}  // namespace ddpm::fuzz
