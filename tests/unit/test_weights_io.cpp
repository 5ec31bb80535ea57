// Weights files: a round trip by name, and every kind of bad file gives one clear
// InputError that names the file and the tensor.
#define BOOST_TEST_MODULE weights_io
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/fs.h"
#include "core/h5.h"
#include "core/unet.h"
#include "io/weights_io.h"

using namespace ddpm;

namespace {

ModelConfig tiny_model() {
  ModelConfig m;
  m.resolution = 8, m.ch = 32, m.ch_mult = {1, 2}, m.num_res_blocks = 1, m.attn_resolutions = {4};
  return m;
}

struct Fixture {
  ModelConfig model = tiny_model();
  UNet net{model};
  HostFloats params = alloc_host_floats(net.layout().size());
  std::string dir;
  Fixture() {
    char tmpl[] = "/tmp/ddpm_weights_XXXXXX";
    dir = mkdtemp(tmpl);
    init_params(net.layout(), params.get(), 5);
  }
  ~Fixture() { std::system(("rm -rf " + dir).c_str()); }
  std::string path(const std::string& name) const { return dir + "/" + name; }

  // Loads a weights file the way ddpm_eval does and returns the error, or "".
  std::string load_error(const std::string& file) const {
    try {
      const h5::File f = h5::File::open_read(file);
      UNet other(read_model_config(f));
      HostFloats p = alloc_host_floats(other.layout().size());
      read_param_group(f, "params", other.layout(), p.get());
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  // Writes a weights file whose `params` group is built by `edit` from the good one.
  std::string write_variant(const std::string& name,
                            const std::function<void(h5::File&, const ParamInfo&, const float*)>& write_tensor,
                            const std::function<void(h5::File&)>& extra = nullptr) {
    const std::string p = path(name);
    h5::File f = h5::File::create(p);
    f.write_attr_str("/", "format", kWeightsFormat);
    f.write_attr_str("/", "model_config", model.to_yaml());
    f.create_group("params");
    for (const ParamInfo& info : net.layout().params()) write_tensor(f, info, params.get() + info.offset);
    if (extra) extra(f);
    f.close();
    return p;
  }
};

bool mentions(const std::string& error, const std::string& a, const std::string& b) {
  BOOST_TEST_MESSAGE(error);
  return error.find(a) != std::string::npos && error.find(b) != std::string::npos &&
         error.find('\n') == std::string::npos;
}

void write_plain(h5::File& f, const ParamInfo& info, const float* data) {
  f.write_f32("params/" + info.name, data, info.shape);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(weights, Fixture)

BOOST_AUTO_TEST_CASE(round_trip_by_name) {
  const std::string p = path("w.h5");
  HostFloats ema = alloc_host_floats(net.layout().size());
  init_params(net.layout(), ema.get(), 6);
  save_weights(p, model, net.layout(), params.get(), ema.get());
  BOOST_TEST(!fs::exists(p + ".tmp"));
  const h5::File f = h5::File::open_read(p);
  BOOST_TEST((read_model_config(f) == model));
  BOOST_TEST(f.read_attr_str("/", "format") == kWeightsFormat);
  HostFloats back = alloc_host_floats(net.layout().size()), back_ema = alloc_host_floats(net.layout().size());
  read_param_group(f, "params", net.layout(), back.get());
  read_param_group(f, "ema", net.layout(), back_ema.get());
  BOOST_TEST(std::equal(params.get(), params.get() + net.layout().size(), back.get()));
  BOOST_TEST(std::equal(ema.get(), ema.get() + net.layout().size(), back_ema.get()));
  // Stored with PyTorch shapes.
  BOOST_TEST((f.info("params/down.1.block.0.nin_shortcut.weight").shape == std::vector<int64_t>{64, 32, 1, 1}));
}

BOOST_AUTO_TEST_CASE(missing_tensor) {
  const std::string p = write_variant("missing.h5", [](h5::File& f, const ParamInfo& info, const float* d) {
    if (info.name != "mid.attn_1.k.weight") write_plain(f, info, d);
  });
  BOOST_TEST(mentions(load_error(p), p, "'params/mid.attn_1.k.weight' is missing"));
}

BOOST_AUTO_TEST_CASE(unexpected_tensor) {
  const std::string p = write_variant("extra.h5", write_plain, [](h5::File& f) {
    const float x[2] = {1, 2};
    f.write_f32("params/mid.block_3.conv1.weight", x, {2});
  });
  BOOST_TEST(mentions(load_error(p), p, "unexpected tensor 'params/mid.block_3.conv1.weight'"));
}

BOOST_AUTO_TEST_CASE(misshaped_tensor) {
  const std::string p = write_variant("shape.h5", [](h5::File& f, const ParamInfo& info, const float* d) {
    if (info.name == "conv_in.weight") {
      f.write_f32("params/conv_in.weight", d, {32, 3, 9});
    } else {
      write_plain(f, info, d);
    }
  });
  BOOST_TEST(mentions(load_error(p), p, "'params/conv_in.weight' has shape [32, 3, 9], expected [32, 3, 3, 3]"));
}

BOOST_AUTO_TEST_CASE(wrong_dtype) {
  const std::string p = write_variant("dtype.h5", [](h5::File& f, const ParamInfo& info, const float* d) {
    if (info.name != "norm_out.bias") return write_plain(f, info, d);
    h5::Lock lock;
    const hsize_t dims[1] = {static_cast<hsize_t>(info.numel)};
    std::vector<double> v(d, d + info.numel);
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t ds = H5Dcreate2(f.id(), "params/norm_out.bias", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(ds);
    H5Sclose(space);
  });
  BOOST_TEST(mentions(load_error(p), p, "'params/norm_out.bias' has dtype float64, expected float32"));
}

BOOST_AUTO_TEST_CASE(truncated_file) {
  const std::string p = path("trunc.h5");
  save_weights(p, model, net.layout(), params.get());
  const long size = static_cast<long>(std::ifstream(p, std::ios::ate | std::ios::binary).tellg());
  BOOST_TEST_REQUIRE(truncate(p.c_str(), size / 2) == 0);
  const std::string e = load_error(p);
  BOOST_TEST(mentions(e, p, "truncated"));
}

BOOST_AUTO_TEST_CASE(not_hdf5_and_missing_file) {
  const std::string p = path("junk.h5");
  std::ofstream(p) << "this is not an HDF5 file\n";
  BOOST_TEST(mentions(load_error(p), p, "not an HDF5 file"));
  BOOST_TEST(mentions(load_error(path("nope.h5")), path("nope.h5"), "no such file"));
}

BOOST_AUTO_TEST_CASE(no_model_config) {
  const std::string p = path("nomodel.h5");
  h5::File f = h5::File::create(p);
  f.create_group("params");
  f.close();
  BOOST_TEST(mentions(load_error(p), p, "model_config"));
}

BOOST_AUTO_TEST_CASE(external_links_are_refused) {
  const std::string target = path("target.h5");
  save_weights(target, model, net.layout(), params.get());
  const std::string p = write_variant("elink.h5", [](h5::File& f, const ParamInfo& info, const float* d) {
    if (info.name == "conv_in.bias") return;
    write_plain(f, info, d);
  });
  {
    h5::Lock lock;
    hid_t fid = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Lcreate_external(target.c_str(), "/params/conv_in.bias", fid, "params/conv_in.bias", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(fid);
  }
  BOOST_TEST(mentions(load_error(p), p, "external link"));
}

BOOST_AUTO_TEST_CASE(saving_never_leaves_a_partial_file_behind) {
  const std::string p = path("keep.h5");
  save_weights(p, model, net.layout(), params.get());
  const std::string before = fs::read_text(p);
  // A directory in the way of the temporary file makes the write fail; the old file stays.
  fs::make_dirs(p + ".tmp");
  BOOST_CHECK_THROW(save_weights(p, model, net.layout(), params.get()), InputError);
  BOOST_TEST(fs::read_text(p) == before);
}

BOOST_AUTO_TEST_SUITE_END()
