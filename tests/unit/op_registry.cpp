#include "op_registry.h"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "core/common.h"
#include "gradcheck.h"
#include "op_registry_cases.h"
#include "reference_ops.h"

namespace ddpm::test {

// --- BackendTensors ---------------------------------------------------------------

BackendTensors::BackendTensors(Ops& o, const HostTensors& host) : ops(o) {
  for (const auto& [name, values] : host) {
    const auto n = static_cast<int64_t>(values.size());
    float* p = ops.alloc(n);
    ops.upload(p, values.data(), n);
    tensors_[name] = Tensor{p, n};
  }
  ops.synchronize();
}

BackendTensors::~BackendTensors() {
  for (auto& [name, t] : tensors_) ops.release(t.data);
}

float* BackendTensors::operator[](const std::string& name) const {
  const auto it = tensors_.find(name);
  DDPM_CHECK(it != tensors_.end(), "op case has no tensor ", name);
  return it->second.data;
}

int64_t BackendTensors::size(const std::string& name) const {
  (void)(*this)[name];
  return tensors_.at(name).n;
}

std::vector<float> BackendTensors::download(const std::string& name) const {
  std::vector<float> v(static_cast<size_t>(size(name)));
  ops.download(v.data(), (*this)[name], size(name));
  return v;
}

std::vector<double> BackendTensors::result(const std::string& name) const {
  const auto it = doubles.find(name);
  if (it != doubles.end()) return it->second;
  const std::vector<float> v = download(name);
  return {v.begin(), v.end()};
}

float BackendTensors::get(const std::string& name, int64_t i) const {
  float v = 0;
  ops.download(&v, (*this)[name] + i, 1);
  return v;
}

void BackendTensors::set(const std::string& name, int64_t i, float value) {
  ops.upload((*this)[name] + i, &value, 1);
}

std::string OpCase::label() const {
  std::string m;
  for (const std::string& name : methods) m += (m.empty() ? "" : "+") + name;
  return m + " [" + shape + "]";
}

std::vector<std::string> OpCase::backward_outputs() const {
  std::vector<std::string> out;
  for (const std::string& in : inputs) out.push_back("d" + in);
  return out;
}

double result_error(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return INFINITY;
  double d = 0, n = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    d += (got[i] - want[i]) * (got[i] - want[i]);
    n += want[i] * want[i];
  }
  return d == 0 ? 0.0 : std::sqrt(d / std::max(n, 1e-300));
}

std::unique_ptr<BackendTensors> run_case(Ops& ops, const OpCase& c) {
  auto t = std::make_unique<BackendTensors>(ops, c.tensors);
  c.forward(ops, *t);
  if (c.backward) c.backward(ops, *t);
  ops.synchronize();
  return t;
}

// --- method lists -----------------------------------------------------------------

namespace {

// The virtual methods of `interface` as `header` declares it.
void add_declared_methods(const std::string& header, const std::string& interface,
                          std::vector<DeclaredMethod>& methods) {
  std::ifstream in(std::string(DDPM_SOURCE_DIR) + "/" + header);
  std::stringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  const size_t begin = all.find("class " + interface + " {");
  DDPM_CHECK(begin != std::string::npos, header, " has no class ", interface);
  const std::string body = all.substr(begin, all.find("\n};", begin) - begin);
  const std::regex virtual_method(R"(virtual[^;{(]*?[\s\*&](\w+)\s*\()");
  for (std::sregex_iterator it(body.begin(), body.end(), virtual_method), end; it != end; ++it) {
    if ((*it)[1] != interface) methods.push_back({interface, (*it)[1]});
  }
}

}  // namespace

std::vector<DeclaredMethod> declared_backend_methods() {
  std::vector<DeclaredMethod> methods;
  add_declared_methods("src/core/ops.h", "Ops", methods);
  add_declared_methods("src/core/diffusion_ops.h", "DiffusionOps", methods);
  return methods;
}

const std::vector<std::string>& methods_every_case_runs() {
  static const std::vector<std::string> m{"alloc", "release", "upload", "download", "synchronize"};
  return m;
}

const std::vector<std::string>& methods_without_computation() {
  static const std::vector<std::string> m{"name", "host_memory", "precision", "diffusion"};
  return m;
}

// --- the cases ----------------------------------------------------------------------

namespace cases {

std::vector<float> zeros(int64_t n) { return std::vector<float>(static_cast<size_t>(n), 0.0f); }

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

void add_conv(std::vector<OpCase>& cases, Data& data, const std::string& where, const ConvSpec& s, int samples) {
  const int64_t n_in = int64_t{s.N} * s.H * s.W * s.C, n_out = int64_t{s.N} * s.out_h() * s.out_w() * s.O;
  const int64_t n_w = s.weight_count();
  OpCase c;
  c.methods = {"make_conv2d"};
  c.shape = where + " " + dims({s.N, s.H, s.W, s.C}) + " -> " + std::to_string(s.O) + " k" + dims({s.KH, s.KW}) +
            " s" + std::to_string(s.stride);
  c.tensors = {{"x", data(n_in)},      {"w", data(n_w, 1.0f / std::sqrt(float(s.C * s.KH * s.KW)))},
               {"b", data(s.O, 0.3f)}, {"y", zeros(n_out)},
               {"dy", data(n_out)},    {"dx", data(n_in)},
               {"dw", zeros(n_w)},     {"db", zeros(s.O)}};
  // One layer object per backend and case, built on first use (as UNet::prepare does).
  auto layers = std::make_shared<std::map<Ops*, std::unique_ptr<Conv2d>>>();
  auto layer = [layers, s](Ops& ops) -> Conv2d& {
    auto& l = (*layers)[&ops];
    if (!l) l = ops.make_conv2d(s);
    return *l;
  };
  // A new weight version per call: finite differences change w between calls.
  auto version = std::make_shared<uint64_t>(0);
  c.forward = [layer, version](Ops& ops, BackendTensors& t) {
    layer(ops).forward(t["y"], false, t["x"], t["w"], t["b"], ++*version);
  };
  c.outputs = {"y"};
  c.backward = [layer, version](Ops& ops, BackendTensors& t) {
    layer(ops).backward(t["dx"], false, t["dw"], t["db"], t["dy"], t["x"], t["w"], ++*version);
  };
  c.inputs = {"x", "w", "b"};
  c.fd_samples = samples;
  c.reference = [s](const HostTensors& h) { return Results{{"y", conv_reference(s, h.at("x"), h.at("w"), h.at("b"))}}; };
  c.reference_bound = 1e-5;
  c.cuda_bound = 1e-4;  // fp32 sums in another order; bias gradients are sums over N Ho Wo
  cases.push_back(std::move(c));
}

// What every layer case sets after its tensors and forward: y = forward(inputs), the
// backward that fills d<input>, a plain reference, and the CUDA bound of fp32 sums
// taken in another order.
void push_layer_case(std::vector<OpCase>& cases, OpCase c, const std::string& output, RunFn backward,
                     std::vector<std::string> inputs, int samples, ReferenceFn reference) {
  c.outputs = {output};
  c.backward = std::move(backward);
  c.inputs = std::move(inputs);
  c.fd_samples = samples;
  c.reference = std::move(reference);
  c.cuda_bound = 1e-4;
  cases.push_back(std::move(c));
}

void add_linear(std::vector<OpCase>& cases, Data& data, const std::string& where, int64_t M, int C, int O,
                int samples) {
  OpCase c;
  c.methods = {"linear_forward", "linear_backward"};
  c.shape = where + " M " + std::to_string(M) + ", " + std::to_string(C) + " -> " + std::to_string(O);
  c.tensors = {{"x", data(M * C)},      {"w", data(int64_t{O} * C, 1.0f / std::sqrt(float(C)))},
               {"b", data(O, 0.3f)},    {"y", zeros(M * O)},
               {"dy", data(M * O)},     {"dx", data(M * C)},
               {"dw", zeros(int64_t{O} * C)}, {"db", zeros(O)}};
  c.forward = [M, C, O](Ops& ops, BackendTensors& t) { ops.linear_forward(t["y"], false, t["x"], t["w"], t["b"], M, C, O); };
  push_layer_case(
      cases, std::move(c), "y",
      [M, C, O](Ops& ops, BackendTensors& t) {
        ops.linear_backward(t["dx"], false, t["dw"], t["db"], t["dy"], t["x"], t["w"], M, C, O);
      },
      {"x", "w", "b"}, samples,
      [M, C, O](const HostTensors& h) {
        return Results{{"y", linear_reference(h.at("x"), h.at("w"), h.at("b"), M, C, O)}};
      });
}

}  // namespace cases

namespace {

using namespace cases;

// The registry's GroupNorm calls, one helper each: the Ops signature is changing.
struct GroupNormShape {
  int N, HW, C, G;
  bool swish;
  GroupNormSpec spec() const { return {N, HW, C, G, swish ? Activation::kSwish : Activation::kNone}; }
};

void run_groupnorm_forward(Ops& ops, BackendTensors& t, const GroupNormShape& s) {
  ops.groupnorm_forward(t["y"], t["mean"], t["rstd"], t["x"], t["w"], t["b"], s.spec());
}

void run_groupnorm_backward(Ops& ops, BackendTensors& t, const GroupNormShape& s) {
  ops.groupnorm_backward(t["dx"], false, t["dw"], t["db"], t["dy"], t["x"], t["mean"], t["rstd"], t["w"], t["b"],
                         s.spec());
}

void add_groupnorm(std::vector<OpCase>& cases, Data& data, const std::string& where, GroupNormShape s, int samples) {
  const int64_t n = int64_t{s.N} * s.HW * s.C;
  OpCase c;
  c.methods = {"groupnorm_forward", "groupnorm_backward"};
  c.shape = where + " " + dims({s.N, s.HW, s.C}) + " G" + std::to_string(s.G) + (s.swish ? " +swish" : "");
  // An offset mean, as real activations have: the variance must not cancel badly.
  c.tensors = {{"x", data.offset(n, 2.0f, 0.5f)}, {"w", data.offset(s.C, 0.3f, 1.0f)}, {"b", data(s.C, 0.3f)},
               {"y", zeros(n)},                  {"mean", zeros(int64_t{s.N} * s.G)},  {"rstd", zeros(int64_t{s.N} * s.G)},
               {"dy", data(n)},                  {"dx", data(n)},                      {"dw", zeros(s.C)},
               {"db", zeros(s.C)}};
  c.forward = [s](Ops& ops, BackendTensors& t) { run_groupnorm_forward(ops, t, s); };
  push_layer_case(
      cases, std::move(c), "y", [s](Ops& ops, BackendTensors& t) { run_groupnorm_backward(ops, t, s); },
      {"x", "w", "b"}, samples, [s](const HostTensors& h) {
        return Results{{"y", groupnorm_reference(h.at("x"), h.at("w"), h.at("b"), s.N, s.HW, s.C, s.G, s.swish)}};
      });
}

// qk_scale: q and k uniform in +-qk_scale, scores of std qk_scale^2 / 3; the model-sized
// cases use sharper weights than uniform ones, so that dk rises above the float32 noise
// of finite differences over L keys.
void add_attention(std::vector<OpCase>& cases, Data& data, const std::string& where, int N, int L, int C,
                   int samples, float qk_scale = 2.0f) {
  const int64_t n = int64_t{N} * L * C;
  OpCase c;
  c.methods = {"attention_forward", "attention_backward"};
  c.shape = where + " N " + std::to_string(N) + " L " + std::to_string(L) + " C " + std::to_string(C);
  c.tensors = {{"q", data(n, qk_scale)}, {"k", data(n, qk_scale)}, {"v", data(n)},  {"a", zeros(n)},
               {"p", zeros(int64_t{N} * L * L)}, {"da", data(n)}, {"dq", data(n)}, {"dk", data(n)}, {"dv", data(n)}};
  c.forward = [N, L, C](Ops& ops, BackendTensors& t) { ops.attention_forward(t["a"], t["p"], t["q"], t["k"], t["v"], N, L, C); };
  push_layer_case(
      cases, std::move(c), "a",
      [N, L, C](Ops& ops, BackendTensors& t) {
        ops.attention_backward(t["dq"], t["dk"], t["dv"], t["da"], t["p"], t["q"], t["k"], t["v"], N, L, C);
      },
      {"q", "k", "v"}, samples,
      [N, L, C](const HostTensors& h) {
        return Results{{"a", attention_reference(h.at("q"), h.at("k"), h.at("v"), N, L, C)}};
      });
  // fp32 dot products over C and L terms round by about sqrt(C + L) 2^-24 norm-wise
  // (1.4e-6 at the 256x256 model's C = 512, L = 256); a wrong formula is off by O(1).
  cases.back().reference_bound = 1e-5;
}

// A case whose forward maps x to y elementwise or by moving data, and whose backward
// maps dy to dx, with a plain reference of y from x.
OpCase unary_case(std::vector<std::string> methods, std::string shape, std::vector<float> x, int64_t n_out,
                  Data& data, RunFn forward, RunFn backward,
                  std::function<std::vector<double>(const std::vector<float>&)> reference) {
  OpCase c;
  c.methods = std::move(methods);
  c.shape = std::move(shape);
  const auto n_in = static_cast<int64_t>(x.size());
  c.tensors = {{"x", std::move(x)}, {"y", zeros(n_out)}, {"dy", data(n_out)}, {"dx", data(n_in)}};
  c.forward = std::move(forward);
  c.outputs = {"y"};
  c.backward = std::move(backward);
  c.inputs = {"x"};
  c.reference = [reference](const HostTensors& h) { return Results{{"y", reference(h.at("x"))}}; };
  return c;
}

// NHWC [N, H, W, C] <-> NCHW [N, C, H, W] index maps.
std::vector<double> nchw_to_nhwc_reference(const std::vector<float>& x, int N, int C, int H, int W) {
  std::vector<double> out(x.size());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < H * W; ++p) out[(size_t(n) * H * W + p) * C + c] = x[(size_t(n) * C + c) * H * W + p];
  return out;
}

void add_elementwise_cases(std::vector<OpCase>& cases, Data& data) {
  struct Act {
    std::string where;
    int N, H, W, C;
  };
  for (const Act& a : {Act{"tiny", 2, 4, 6, 3}, Act{"cifar10 level 0", 2, 32, 32, 128},
                       Act{"256x256 level 4", 1, 16, 16, 512}}) {
    const int N = a.N, H = a.H, W = a.W, C = a.C;
    const int64_t n = int64_t{N} * H * W * C, M = int64_t{N} * H * W;
    const std::string shape = a.where + " " + dims({N, H, W, C});
    const int samples = a.where == "tiny" ? 24 : 8;
    cases.push_back(unary_case(
        {"swish_forward", "swish_backward"}, shape, data(n, 3.0f), n, data,
        [n](Ops& ops, BackendTensors& t) { ops.swish_forward(t["y"], t["x"], n); },
        [n](Ops& ops, BackendTensors& t) { ops.swish_backward(t["dx"], t["dy"], t["x"], n); },
        [](const std::vector<float>& x) {
          std::vector<double> y(x.size());
          for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / (1.0 + std::exp(-double(x[i])));
          return y;
        }));
    cases.back().fd_samples = samples;
    cases.back().reference_bound = 1e-6;
    cases.back().cuda_bound = 2e-6;  // two exp implementations of ~2 ulp

    // Dropout is its own adjoint: backward applies the same keyed mask to dy.
    const float p = a.where == "tiny" ? 0.4f : 0.1f;
    const DropoutKey key{7, 3, 11, 5};
    cases.push_back(unary_case(
        {"dropout_apply"}, shape + " p " + std::to_string(p), data(n), n, data,
        [=](Ops& ops, BackendTensors& t) {
          ops.copy(t["y"], t["x"], n);
          ops.dropout_apply(t["y"], p, key, N, n / N);
        },
        [=](Ops& ops, BackendTensors& t) {
          ops.copy(t["dx"], t["dy"], n);
          ops.dropout_apply(t["dx"], p, key, N, n / N);
        },
        nullptr));
    cases.back().reference = nullptr;
    cases.back().reference_elsewhere = "test_cpu_kernels dropout_masks_do_not_depend_on_how_the_batch_is_split";
    cases.back().fd_samples = samples;
    cases.back().cuda_bound = 0;  // the same Philox masks: bit for bit

    // The time embedding's projection broadcast over HW; its adjoint sums over HW.
    {
      OpCase c;
      c.methods = {"add_channel_bias", "sum_over_hw", "copy"};
      c.shape = shape;
      c.tensors = {{"x", data(n)}, {"bias", data(int64_t{N} * C)}, {"y", zeros(n)}, {"dy", data(n)},
                   {"dx", data(n)}, {"dbias", data(int64_t{N} * C)}};
      c.forward = [=](Ops& ops, BackendTensors& t) {
        ops.copy(t["y"], t["x"], n);
        ops.add_channel_bias(t["y"], t["bias"], N, H * W, C);
      };
      c.outputs = {"y"};
      c.backward = [=](Ops& ops, BackendTensors& t) {
        ops.copy(t["dx"], t["dy"], n);
        ops.sum_over_hw(t["dbias"], t["dy"], N, H * W, C);
      };
      c.inputs = {"x", "bias"};
      c.fd_samples = samples;
      c.reference = [=](const HostTensors& h) {
        std::vector<double> y = widen(h.at("x"));
        for (int64_t m = 0; m < M; ++m)
          for (int ch = 0; ch < C; ++ch) y[m * C + ch] += h.at("bias")[(m / (H * W)) * C + ch];
        return Results{{"y", y}};
      };
      c.cuda_bound = 1e-5;
      cases.push_back(std::move(c));
    }
    cases.push_back(unary_case(
        {"upsample2x_forward", "upsample2x_backward"}, shape, data(n), 4 * n, data,
        [=](Ops& ops, BackendTensors& t) { ops.upsample2x_forward(t["y"], t["x"], N, H, W, C); },
        [=](Ops& ops, BackendTensors& t) { ops.upsample2x_backward(t["dx"], t["dy"], N, H, W, C); },
        [=](const std::vector<float>& x) {
          std::vector<double> y(static_cast<size_t>(4 * n));
          for (int i = 0; i < N; ++i)
            for (int oy = 0; oy < 2 * H; ++oy)
              for (int ox = 0; ox < 2 * W; ++ox)
                for (int ch = 0; ch < C; ++ch)
                  y[((size_t(i) * 2 * H + oy) * 2 * W + ox) * C + ch] = x[((size_t(i) * H + oy / 2) * W + ox / 2) * C + ch];
          return y;
        }));
    cases.back().fd_samples = samples;
    cases.back().reference_bound = 0;
    cases.back().cuda_bound = 0;  // the same (a0 + a1) + (b0 + b1) order
    cases.push_back(unary_case(
        {"avgpool2x_forward", "avgpool2x_backward"}, shape, data(n), n / 4, data,
        [=](Ops& ops, BackendTensors& t) { ops.avgpool2x_forward(t["y"], t["x"], N, H, W, C); },
        [=](Ops& ops, BackendTensors& t) { ops.avgpool2x_backward(t["dx"], false, t["dy"], N, H, W, C); },
        [=](const std::vector<float>& x) {
          std::vector<double> y(static_cast<size_t>(n / 4), 0.0);
          for (int i = 0; i < N; ++i)
            for (int iy = 0; iy < H; ++iy)
              for (int ix = 0; ix < W; ++ix)
                for (int ch = 0; ch < C; ++ch)
                  y[((size_t(i) * (H / 2) + iy / 2) * (W / 2) + ix / 2) * C + ch] +=
                      0.25 * x[((size_t(i) * H + iy) * W + ix) * C + ch];
          return y;
        }));
    cases.back().fd_samples = samples;
    cases.back().cuda_bound = 0;
    // The up path's skip connection: [h | skip] along channels; backward splits.
    {
      const int Cb = std::max(2, C / 2);
      OpCase c;
      c.methods = {"concat_channels", "split_channels"};
      c.shape = shape + " | " + std::to_string(Cb);
      c.tensors = {{"a", data(n)},      {"b", data(M * Cb)},  {"y", zeros(M * (C + Cb))},
                   {"dy", data(M * (C + Cb))}, {"da", data(n)}, {"db", data(M * Cb)}};
      c.forward = [=](Ops& ops, BackendTensors& t) { ops.concat_channels(t["y"], t["a"], t["b"], M, C, Cb); };
      c.outputs = {"y"};
      c.backward = [=](Ops& ops, BackendTensors& t) { ops.split_channels(t["da"], t["db"], t["dy"], M, C, Cb); };
      c.inputs = {"a", "b"};
      c.fd_samples = samples;
      c.reference = [=](const HostTensors& h) {
        std::vector<double> y;
        for (int64_t m = 0; m < M; ++m) {
          y.insert(y.end(), h.at("a").begin() + m * C, h.at("a").begin() + (m + 1) * C);
          y.insert(y.end(), h.at("b").begin() + m * Cb, h.at("b").begin() + (m + 1) * Cb);
        }
        return Results{{"y", y}};
      };
      c.reference_bound = 0;
      c.cuda_bound = 0;
      cases.push_back(std::move(c));
    }
    // Residual sums: y = a + b; both gradients are dy.
    {
      OpCase c;
      c.methods = {"add_inplace", "copy"};
      c.shape = shape;
      c.tensors = {{"a", data(n)}, {"b", data(n)}, {"y", zeros(n)}, {"dy", data(n)}, {"da", data(n)}, {"db", data(n)}};
      c.forward = [n](Ops& ops, BackendTensors& t) {
        ops.copy(t["y"], t["a"], n);
        ops.add_inplace(t["y"], t["b"], n);
      };
      c.outputs = {"y"};
      c.backward = [n](Ops& ops, BackendTensors& t) {
        ops.copy(t["da"], t["dy"], n);
        ops.copy(t["db"], t["dy"], n);
      };
      c.inputs = {"a", "b"};
      c.fd_samples = samples;
      c.reference = [](const HostTensors& h) {
        std::vector<double> y = widen(h.at("a"));
        for (size_t i = 0; i < y.size(); ++i) y[i] += h.at("b")[i];
        return Results{{"y", y}};
      };
      c.reference_bound = 1e-7;  // float addition rounds once
      c.cuda_bound = 0;
      cases.push_back(std::move(c));
    }
  }
}

void add_boundary_cases(std::vector<OpCase>& cases, Data& data) {
  // The model's input and output: NCHW images <-> NHWC activations (adjoint pair).
  struct Image {
    std::string where;
    int N, C, H, W;
  };
  for (const Image& im : {Image{"cifar10 input", 2, 3, 32, 32}, Image{"256x256 input", 1, 3, 256, 256}}) {
    const int N = im.N, C = im.C, H = im.H, W = im.W;
    const int64_t n = int64_t{N} * C * H * W;
    cases.push_back(unary_case(
        {"nchw_to_nhwc", "nhwc_to_nchw"}, im.where + " " + dims({N, C, H, W}), data(n), n, data,
        [=](Ops& ops, BackendTensors& t) { ops.nchw_to_nhwc(t["y"], t["x"], N, C, H, W); },
        [=](Ops& ops, BackendTensors& t) { ops.nhwc_to_nchw(t["dx"], t["dy"], N, C, H, W); },
        [=](const std::vector<float>& x) { return nchw_to_nhwc_reference(x, N, C, H, W); }));
    cases.back().reference_bound = 0;
    cases.back().cuda_bound = 0;
  }
  // Sinusoidal time embedding of size ch (128; the large bedroom model's 192).
  for (int dim : {128, 192}) {
    OpCase c;
    c.methods = {"timestep_embedding"};
    c.shape = "ch " + std::to_string(dim) + ", N 3";
    c.tensors = {{"t", {0.0f, 17.0f, 999.0f}}, {"y", zeros(3 * dim)}};
    c.forward = [dim](Ops& ops, BackendTensors& t) { ops.timestep_embedding(t["y"], t["t"], 3, dim); };
    c.outputs = {"y"};
    c.reference = [dim](const HostTensors& h) { return Results{{"y", timestep_embedding_reference(h.at("t"), dim)}}; };
    c.reference_bound = 1e-5;
    c.cuda_bound = 1e-5;  // sin/cos of arguments up to 999
    cases.push_back(std::move(c));
  }
  // Memory: copy, then zero the second half.
  {
    const int64_t n = 3 * 32 * 32 * 2;
    OpCase c;
    c.methods = {"copy", "zero"};
    c.shape = "cifar10 batch 2x32x32x3";
    c.tensors = {{"x", data(n)}, {"y", zeros(n)}};
    c.forward = [n](Ops& ops, BackendTensors& t) {
      ops.copy(t["y"], t["x"], n);
      ops.zero(t["y"] + n / 2, n - n / 2);
    };
    c.outputs = {"y"};
    c.reference = [n](const HostTensors& h) {
      std::vector<double> y(static_cast<size_t>(n), 0.0);
      std::copy(h.at("x").begin(), h.at("x").begin() + n / 2, y.begin());
      return Results{{"y", y}};
    };
    c.reference_bound = 0;
    c.cuda_bound = 0;
    cases.push_back(std::move(c));
  }
  // Work replayed as a CUDA graph: linear + swish, as the sampler's U-Net step.
  {
    const int64_t M = 512;
    const int C = 64, O = 96;
    OpCase c;
    c.methods = {"run_graph", "drop_graphs", "linear_forward", "swish_forward"};
    c.shape = "M 512, 64 -> 96, replayed three times";
    c.tensors = {{"x", data(M * C)}, {"w", data(int64_t{O} * C, 0.1f)}, {"b", data(O)}, {"h", zeros(M * O)},
                 {"y", zeros(M * O)}};
    c.forward = [=](Ops& ops, BackendTensors& t) {
      auto work = [&] {
        ops.linear_forward(t["h"], false, t["x"], t["w"], t["b"], M, C, O);
        ops.swish_forward(t["y"], t["h"], M * O);
      };
      for (int call = 0; call < 3; ++call) ops.run_graph(1, work);  // warm-up, capture, replay
      ops.drop_graphs();
    };
    c.outputs = {"y"};
    c.reference = [=](const HostTensors& h) {
      std::vector<double> y = linear_reference(h.at("x"), h.at("w"), h.at("b"), M, C, O);
      for (double& v : y) v = v / (1.0 + std::exp(-v));
      return Results{{"y", y}};
    };
    c.reference_bound = 1e-6;
    c.cuda_bound = 1e-4;
    cases.push_back(std::move(c));
  }
}

void add_optimizer_cases(std::vector<OpCase>& cases, Data& data) {
  for (int64_t n : {int64_t{1}, int64_t{65537}, int64_t{1000003}}) {
    OpCase c;
    c.methods = {"sum_squares"};
    c.shape = "n " + std::to_string(n);
    c.tensors = {{"x", data(n)}};
    c.forward = [n](Ops& ops, BackendTensors& t) { t.doubles["sum"] = {ops.sum_squares(t["x"], n)}; };
    c.outputs = {"sum"};
    c.reference = [](const HostTensors& h) {
      double s = 0;
      for (float v : h.at("x")) s += double(v) * v;
      return Results{{"sum", {s}}};
    };
    c.reference_bound = 1e-12;
    c.cuda_bound = 1e-12;
    cases.push_back(std::move(c));
  }
  // Adam + EMA with a large step (lr 0.1), so that the update itself is checked, not
  // only the parameters it barely moves.
  for (bool with_ema : {true, false}) {
    const int64_t n = 100003;
    AdamStep s;
    s.lr = 0.1, s.bias_correction1 = 1 - std::pow(0.9, 3), s.bias_correction2_sqrt = std::sqrt(1 - std::pow(0.999, 3));
    s.grad_scale = 0.37, s.ema_decay = 0.99;
    std::vector<float> v = data(n, 0.001f);
    for (float& x : v) x = std::fabs(x);
    OpCase c;
    c.methods = {"adam_ema_update"};
    c.shape = "n " + std::to_string(n) + (with_ema ? " with EMA" : " without EMA");
    c.tensors = {{"p", data(n)}, {"m", data(n, 0.01f)}, {"v", v}, {"ema", data(n)}, {"g", data(n, 3.0f)}};
    c.forward = [=](Ops& ops, BackendTensors& t) {
      ops.adam_ema_update(t["p"], t["m"], t["v"], with_ema ? t["ema"] : nullptr, t["g"], n, s);
    };
    c.outputs = {"p", "m", "v", "ema"};
    c.reference = [=](const HostTensors& h) {
      Results r{{"p", widen(h.at("p"))}, {"m", {}}, {"v", {}}, {"ema", widen(h.at("ema"))}};
      for (int64_t i = 0; i < n; ++i) {
        const double g = h.at("g")[i] * s.grad_scale;
        const double m = s.beta1 * h.at("m")[i] + (1 - s.beta1) * g, vv = s.beta2 * h.at("v")[i] + (1 - s.beta2) * g * g;
        r["m"].push_back(m);
        r["v"].push_back(vv);
        r["p"][i] -= s.lr / s.bias_correction1 * m / (std::sqrt(vv) / s.bias_correction2_sqrt + s.eps);
        if (with_ema) r["ema"][i] += (1 - s.ema_decay) * (r["p"][i] - r["ema"][i]);
      }
      return r;
    };
    c.cuda_bound = 0;  // bit for bit (test_gpu_kernels)
    cases.push_back(std::move(c));
  }
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> c;
    Data data;
    // Convolutions (oneDNN / cuDNN): 3x3 stride 1 pad 1 and the downsample's geometry.
    ConvSpec toy;
    toy.N = 2, toy.H = 5, toy.W = 6, toy.C = 3, toy.O = 4;
    ConvSpec toy_down = toy;
    toy_down.H = 6;
    toy_down.as_downsample();
    add_conv(c, data, "tiny", toy, 24);
    add_conv(c, data, "tiny downsample", toy_down, 24);
    add_conv(c, data, "cifar10 conv_in", conv3x3(2, 32, 3, 128), 8);
    add_conv(c, data, "cifar10 level 0", conv3x3(1, 32, 128, 128), 6);
    add_conv(c, data, "cifar10 level 1 conv1", conv3x3(1, 16, 128, 256), 6);
    add_conv(c, data, "cifar10 downsample 32 -> 16", downsample(1, 32, 128), 6);
    add_conv(c, data, "cifar10 level 3", conv3x3(2, 4, 256, 256), 6);
    add_conv(c, data, "conv_out", conv3x3(2, 32, 128, 3), 8);
    add_conv(c, data, "256x256 level 3", conv3x3(1, 32, 256, 256), 4);
    add_conv(c, data, "256x256 level 5", conv3x3(1, 8, 512, 512), 4);
    add_conv(c, data, "256x256 downsample 16 -> 8", downsample(1, 16, 512), 4);
    // Linear layers and 1x1 convolutions (sgemm / cuBLAS).
    add_linear(c, data, "tiny", 6, 5, 7, 24);
    add_linear(c, data, "temb.dense.0", 2, 128, 512, 8);
    add_linear(c, data, "temb.dense.1", 2, 512, 512, 8);
    add_linear(c, data, "cifar10 temb_proj", 2, 512, 256, 8);
    add_linear(c, data, "cifar10 attention q/k/v/proj_out 16x16", 2 * 256, 256, 256, 8);
    add_linear(c, data, "cifar10 nin_shortcut 16x16", 2 * 256, 128, 256, 8);
    add_linear(c, data, "256x256 attention q/k/v/proj_out 16x16", 256, 512, 512, 6);
    add_linear(c, data, "256x256 nin_shortcut 16x16", 256, 256, 512, 6);
    // GroupNorm (32 groups in the model) with and without the fused swish.
    for (bool swish : {false, true}) {
      add_groupnorm(c, data, "tiny", {2, 5, 8, 2, swish}, 40);
      add_groupnorm(c, data, "tiny, one channel per group", {2, 5, 8, 8, swish}, 40);
      add_groupnorm(c, data, "cifar10 level 0", {2, 1024, 128, 32, swish}, 12);
      add_groupnorm(c, data, "cifar10 level 1", {2, 256, 256, 32, swish}, 12);
      add_groupnorm(c, data, "cifar10 level 3", {2, 16, 256, 32, swish}, 12);
      add_groupnorm(c, data, "256x256 level 2", {1, 4096, 256, 32, swish}, 12);
      add_groupnorm(c, data, "256x256 level 5", {1, 64, 512, 32, swish}, 12);
    }
    // Single-head attention.
    add_attention(c, data, "tiny", 2, 6, 5, 40, 1.5f);
    add_attention(c, data, "cifar10 16x16", 2, 256, 256, 12);
    add_attention(c, data, "cifar10 mid 4x4", 2, 16, 256, 12);
    add_attention(c, data, "256x256 16x16", 1, 256, 512, 12);
    add_attention(c, data, "256x256 mid 8x8", 2, 64, 512, 12);
    add_elementwise_cases(c, data);
    add_boundary_cases(c, data);
    add_optimizer_cases(c, data);
    add_inception_cases(c, data);  // op_registry_inception.cpp
    add_diffusion_cases(c, data);  // op_registry_diffusion.cpp
    return c;
  }();
  return cases;
}

}  // namespace ddpm::test
