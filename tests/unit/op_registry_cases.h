// What the files that fill the op registry share (op_registry.cpp: the U-Net's and the
// optimizer's cases; op_registry_inception.cpp: the evaluation network's;
// op_registry_diffusion.cpp: the diffusion kernels'): the test data stream and the
// helpers that make a case.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "op_registry.h"

namespace ddpm::test::cases {

using Results = std::map<std::string, std::vector<double>>;

// Test data from one stream counter, so that no two tensors of the registry coincide.
class Data {
 public:
  std::vector<float> operator()(int64_t n, float scale = 1.0f) { return random_vector(n, ++stream_, scale); }
  std::vector<float> offset(int64_t n, float scale, float offset) {
    std::vector<float> v = (*this)(n, scale);
    for (float& x : v) x += offset;
    return v;
  }

 private:
  uint32_t stream_ = 5000;
};

std::vector<float> zeros(int64_t n);
std::string dims(std::initializer_list<int64_t> d);  // "2x32x32"
std::vector<double> widen(const std::vector<float>& v);

// A convolution (forward and backward through one Conv2d per backend) and a linear
// layer, with plain references.
void add_conv(std::vector<OpCase>& cases, Data& data, const std::string& where, const ConvSpec& s, int samples);
void add_linear(std::vector<OpCase>& cases, Data& data, const std::string& where, int64_t M, int C, int O,
                int samples);

// The Inception's ops on its shapes (op_registry_inception.cpp).
void add_inception_cases(std::vector<OpCase>& cases, Data& data);
// The diffusion kernels on the CIFAR10 model's shapes (op_registry_diffusion.cpp).
void add_diffusion_cases(std::vector<OpCase>& cases, Data& data);

}  // namespace ddpm::test::cases
