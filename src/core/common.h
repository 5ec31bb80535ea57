// Errors, checks and small string helpers shared by every part of ddpm.
//
// Two kinds of failure:
//  - InputError: the user's input is bad (a file, a config key, a flag). Apps print
//    one line "prog: error: <what>" and exit with status 2 (kExitBadInput); nothing
//    already on disk is touched.
//  - Error: something that should not happen (a library call failed). Apps print the
//    message with the source location and exit with status 1.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ddpm {

// Process exit statuses, documented in docs/operations.md.
constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitBadInput = 2;

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void input_error(Args&&... args) {
  throw InputError(cat(std::forward<Args>(args)...));
}

[[noreturn]] void fail_check(const char* file, int line, const std::string& what);

}  // namespace ddpm

// Internal invariant: throws ddpm::Error naming the file and line.
#define DDPM_CHECK(cond, ...)                                                          \
  do {                                                                                 \
    if (!(cond)) ::ddpm::fail_check(__FILE__, __LINE__, ::ddpm::cat("check failed: ", #cond, " ", ##__VA_ARGS__)); \
  } while (0)
