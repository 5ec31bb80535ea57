#include "apps/cli.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "core/common.h"

namespace ddpm {

Cli::Cli(std::string prog, std::string usage_line, std::string summary)
    : prog_(std::move(prog)), usage_line_(std::move(usage_line)), summary_(std::move(summary)) {}

Cli& Cli::option(const std::string& name, const std::string& value_name, const std::string& help,
                 const std::string& default_value) {
  order_.push_back(name);
  specs_[name] = Spec{value_name, help, default_value, false, false};
  return *this;
}

Cli& Cli::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{"", help, "", true, false};
  return *this;
}

Cli& Cli::repeated(const std::string& name, const std::string& value_name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{value_name, help, "", false, true};
  return *this;
}

std::string Cli::help() const {
  std::string h = cat("usage: ", prog_, " ", usage_line_, "\n\n", summary_, "\n\noptions:\n");
  for (const std::string& n : order_) {
    const Spec& s = specs_.at(n);
    std::string left = "  --" + n + (s.is_flag ? "" : " " + s.value_name);
    if (left.size() < 30) left.resize(30, ' ');
    else left += "\n" + std::string(30, ' ');
    h += left + s.help;
    if (!s.default_value.empty()) h += " (default: " + s.default_value + ")";
    if (s.is_repeated) h += " (repeatable)";
    h += "\n";
  }
  h += "  --help                      show this help and exit\n";
  return h;
}

void Cli::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      if (defer_help_) return;  // parse_on_ranks
      std::cout << help();
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) input_error("unknown option --", name, " (see ", prog_, " --help)");
    if (it->second.is_flag) {
      if (has_value) input_error("option --", name, " takes no value");
      values_[name].push_back("1");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) input_error("option --", name, " needs a value (", it->second.value_name, ")");
      value = argv[++i];
    }
    if (!it->second.is_repeated && values_.count(name)) input_error("option --", name, " given twice");
    values_[name].push_back(value);
  }
}

bool Cli::parse_on_ranks(int argc, char** argv, bool print_help, int first) {
  defer_help_ = true;
  parse(argc, argv, first);
  if (help_requested_ && print_help) std::cout << help();
  return !help_requested_;
}

bool Cli::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Cli::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second.back();
  auto spec = specs_.find(name);
  return spec == specs_.end() ? "" : spec->second.default_value;
}

std::string Cli::require(const std::string& name) const {
  if (!has(name)) input_error("missing required option --", name, " (see ", prog_, " --help)");
  return get(name);
}

std::vector<std::string> Cli::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Cli::get_int(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  input_error("option --", name, ": expected an integer, got '", v, "'");
}

double Cli::get_double(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    const double x = std::stod(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  input_error("option --", name, ": expected a number, got '", v, "'");
}

int run_app(const std::string& prog, const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog.c_str(), e.what());
    return kExitBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", prog.c_str());
    return kExitInternal;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", prog.c_str(), e.what());
    return kExitInternal;
  }
}

}  // namespace ddpm
