#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>
#include <utility>

#include "core/common.h"
#include "core/config.h"
#include "core/fs.h"

using namespace ddpm;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

BOOST_AUTO_TEST_CASE(defaults_are_the_paper_cifar10_setup) {
  const Config c = parse_config("", "empty.yaml");
  BOOST_TEST(c.model.ch == 128);
  BOOST_TEST((c.model.ch_mult == std::vector<int>{1, 2, 2, 2}));
  BOOST_TEST(c.diffusion.num_timesteps == 1000);
  BOOST_TEST(c.train.ema_decay == 0.9999);
  BOOST_TEST(c.train.grad_clip == 1.0);
}

BOOST_AUTO_TEST_CASE(unknown_key_is_named) {
  const std::string e = error_of([] { parse_config("train:\n  lrr: 1\n", "x.yaml"); });
  BOOST_TEST(e.find("x.yaml") != std::string::npos);
  BOOST_TEST(e.find("train.lrr") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_values_are_named) {
  BOOST_TEST(error_of([] { parse_config("train:\n  lr: abc\n", "x.yaml"); }).find("train.lr") != std::string::npos);
  BOOST_TEST(error_of([] { parse_config("model:\n  ch: 100\n", "x.yaml"); }).find("model.ch") != std::string::npos);
  BOOST_TEST(error_of([] { parse_config("model:\n  attn_resolutions: [15]\n", "x.yaml"); }).find("attn_resolutions") !=
             std::string::npos);
  BOOST_TEST(error_of([] { parse_config("nosuch:\n  a: 1\n", "x.yaml"); }).find("unknown section") != std::string::npos);
  BOOST_TEST(error_of([] { parse_config("model:\n  num_res_blocks: 0\n", "x.yaml"); }).find("model.ch_mult") !=
             std::string::npos);
  BOOST_TEST(error_of([] { parse_config("diffusion:\n  num_timesteps: 1\n", "x.yaml"); }).find("num_timesteps") !=
             std::string::npos);
  BOOST_TEST(error_of([] { parse_config("model: [1, 2\n", "x.yaml"); }).find("not valid YAML") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(overrides_apply_and_are_checked) {
  const Config c = parse_config("", "x.yaml", {"train.lr=1e-3", "model.ch_mult=[1,2]", "data.path=/tmp/d"});
  BOOST_TEST(c.train.lr == 1e-3);
  BOOST_TEST((c.model.ch_mult == std::vector<int>{1, 2}));
  BOOST_TEST(c.data.path == "/tmp/d");
  BOOST_TEST(error_of([] { parse_config("", "x.yaml", {"train.nope=1"}); }).find("train.nope") != std::string::npos);
  BOOST_TEST(error_of([] { parse_config("", "x.yaml", {"garbage"}); }).find("section.key=value") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(resolved_yaml_round_trips) {
  const Config a = parse_config("model:\n  ch: 64\n  dropout: 0.3\ntrain:\n  lr: 2e-5\n  seed: 7\n", "x.yaml");
  const Config b = parse_config(a.to_yaml(), "resolved.yaml");
  BOOST_TEST(a.to_yaml() == b.to_yaml());
  BOOST_TEST(b.model.ch == 64);
  BOOST_TEST(b.train.lr == 2e-5);
  BOOST_TEST((b.model == a.model));
}

BOOST_AUTO_TEST_CASE(docs_list_every_key) {
  const std::string doc = fs::read_text(std::string(DDPM_SOURCE_DIR) + "/docs/config.md");
  for (const ConfigKey& k : config_keys()) {
    BOOST_TEST_CONTEXT(k.section << "." << k.name) {
      BOOST_TEST(doc.find("`" + k.section + "." + k.name + "`") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_shipped_config_parses) {
  for (const char* name : {"cifar10", "celebahq256", "lsun_church256", "lsun_bedroom256", "lsun_cat256", "tiny", "demo"}) {
    BOOST_TEST_CONTEXT(name) {
      const std::string path = std::string(DDPM_SOURCE_DIR) + "/configs/" + name + ".yaml";
      BOOST_CHECK_NO_THROW(load_config(path));
    }
  }
}

// As the reference's commands train them (scripts/run_lsun.py): LSUN cat with
// --randflip 0, church and bedroom with its default, flips on.
BOOST_AUTO_TEST_CASE(lsun_configs_flip_as_the_reference_commands) {
  for (const auto& [name, flips] : {std::pair<const char*, bool>{"lsun_cat256", false}, {"lsun_church256", true},
                                    {"lsun_bedroom256", true}, {"lsun_bedroom256_large", true}}) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(load_config(std::string(DDPM_SOURCE_DIR) + "/configs/" + name + ".yaml").data.random_flip == flips);
    }
  }
}
