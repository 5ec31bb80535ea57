// Command-line parsing and the error policy shared by the ddpm_* apps: `--name value`
// or `--name=value`, flags, repeatable options, `--help`; bad input is one line
// "prog: error: ..." and exit status 2 (see core/common.h).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ddpm {

class Cli {
 public:
  Cli(std::string prog, std::string usage_line, std::string summary);
  Cli& option(const std::string& name, const std::string& value_name, const std::string& help,
              const std::string& default_value = "");
  Cli& flag(const std::string& name, const std::string& help);
  Cli& repeated(const std::string& name, const std::string& value_name, const std::string& help);
  // Parses argv[first..]; prints help and exits 0 on --help (unless deferred, see
  // help_requested()); InputError on bad options.
  void parse(int argc, char** argv, int first = 1);
  // MPI apps: like parse, but --help is printed by one rank (print_help) and every
  // rank gets false back, to return normally instead of exiting under mpirun.
  bool parse_on_ranks(int argc, char** argv, bool print_help, int first = 1);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;  // value or default ("" if none)
  std::string require(const std::string& name) const;
  std::vector<std::string> all(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  std::string help() const;

 private:
  struct Spec {
    std::string value_name, help, default_value;
    bool is_flag = false, is_repeated = false;
  };
  std::string prog_, usage_line_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
  bool defer_help_ = false, help_requested_ = false;
};

// Runs body, mapping InputError to "prog: error: ..." + exit 2, other exceptions to
// "prog: internal error: ..." + exit 1.
int run_app(const std::string& prog, const std::function<int()>& body);

}  // namespace ddpm
