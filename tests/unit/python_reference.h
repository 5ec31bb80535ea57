// Running a Python reference generator (tests/reference) from a C++ test, for references
// too large to commit: the test makes them in its working directory (the build tree).
// The test target defines DDPM_TEST_PYTHON (tests/CMakeLists.txt) and DDPM_SOURCE_DIR.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace ddpm::test {

struct Command {
  int status = -1;     // the exit status; -1 when it did not exit
  std::string output;  // stdout and stderr
};

inline Command run_command(const std::string& command) {
  Command c;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) c.output.append(buffer, n);
  const int status = pclose(pipe);
  c.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return c;
}

// The command line running `script` (a path in the source tree) with `args`.
inline std::string python_script(const std::string& script, const std::string& args) {
  return std::string(DDPM_TEST_PYTHON) + " " + DDPM_SOURCE_DIR + "/" + script + " " + args;
}

// Runs the script; its output, or an exception carrying it when the script fails.
inline std::string run_python_script(const std::string& script, const std::string& args) {
  const Command c = run_command(python_script(script, args));
  if (c.status != 0) throw std::runtime_error(script + " " + args + " failed:\n" + c.output);
  return c.output;
}

}  // namespace ddpm::test
