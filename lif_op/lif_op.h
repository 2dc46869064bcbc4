// Shared pieces of the eventflow LIF operator: the surrogate-gradient formulas (host and device) and the
// input checks used by both the CPU (lif_op.cpp) and CUDA (lif_op_cuda.cu) kernels.
//
// Equations (Hagenaars et al., NeurIPS 2021, Sec. 3; the reference ConvLIF cell), per element of (B, C, H, W)
// with beta = sigmoid(leak) and theta = max(thresh, 0.01) of shape (C, 1, 1):
//   hard reset: v_out = ((v * beta) * (1 - z)) + ((1 - beta) * I)
//   soft reset: v_out = ((v * beta) + ((1 - beta) * I)) - (z * theta)
//   z_out = H(v_out - theta), H(x) = 1 if x > 0 else 0, with dz_out/dx replaced by a surrogate s(x).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>
#include <c10/util/string_view.h>

#include <cstdint>
#include <type_traits>

namespace eventflow {

// The surrogate derivatives s(x) of the Heaviside step, x = v_out - theta, w = width.
enum class Surrogate : int64_t {
  kArctan = 0,      // 1 / (1 + w x^2)                       (Fang et al. 2021; the paper's default, w = 10)
  kSuperSpike = 1,  // 1 / (1 + w |x|)^2                     (Zenke & Ganguli 2018)
  kTriangle = 2,    // max(0, 1 - w |x|)                     (Bellec et al. 2020)
  kMultiGauss = 3,  // 1.15 N(x; 0, w) - 0.15 N(x; w, 6w) - 0.15 N(x; -w, 6w)   (Yin et al. 2021)
};

// Parses the schema's `str surrogate`; TORCH_CHECK lists the valid names on a bad one.
Surrogate parse_surrogate(c10::string_view name);

// TORCH_CHECKs shared by the forward and backward ops: shapes (B, C, H, W) and (C, 1, 1), one floating dtype,
// one device, a finite positive width. `op` names the operator in the messages.
void check_lif_inputs(const char* op, const at::Tensor& current, const at::Tensor& v, const at::Tensor& z,
                      const at::Tensor& beta, const at::Tensor& theta, double width);

// Extra checks of the backward op: both incoming gradients are shaped, typed and placed like v.
void check_lif_grads(const at::Tensor& grad_v_out, const at::Tensor& grad_z_out, const at::Tensor& v);

template <typename T>
C10_HOST_DEVICE inline T abs_value(T x) {
  return x < T(0) ? -x : x;
}

// Normal density N(x; mu, sigma) = exp(-(x - mu)^2 / (2 sigma^2)) / (sigma sqrt(2 pi)).
template <typename T>
C10_HOST_DEVICE inline T normal_pdf(T x, T mu, T sigma) {
  const T d = x - mu;
  return std::exp(-(d * d) / (T(2) * sigma * sigma)) / (sigma * T(2.5066282746310002));
}

// s(x) for one surrogate; the kind is a template argument so that the element loops carry no switch.
template <Surrogate kind, typename T>
C10_HOST_DEVICE inline T surrogate_grad(T x, T w) {
  if constexpr (kind == Surrogate::kArctan) {
    return T(1) / (T(1) + w * x * x);
  } else if constexpr (kind == Surrogate::kSuperSpike) {
    const T d = T(1) + w * abs_value(x);
    return T(1) / (d * d);
  } else if constexpr (kind == Surrogate::kTriangle) {
    const T t = T(1) - w * abs_value(x);
    return t > T(0) ? t : T(0);
  } else {
    return T(1.15) * normal_pdf(x, T(0), w) - T(0.15) * normal_pdf(x, w, T(6) * w) -
           T(0.15) * normal_pdf(x, -w, T(6) * w);
  }
}

// Calls f(std::integral_constant<Surrogate, kind>{}) for the runtime kind, so kernels are instantiated per kind.
template <typename F>
inline void dispatch_surrogate(Surrogate kind, F&& f) {
  switch (kind) {
    case Surrogate::kArctan:
      f(std::integral_constant<Surrogate, Surrogate::kArctan>{});
      break;
    case Surrogate::kSuperSpike:
      f(std::integral_constant<Surrogate, Surrogate::kSuperSpike>{});
      break;
    case Surrogate::kTriangle:
      f(std::integral_constant<Surrogate, Surrogate::kTriangle>{});
      break;
    case Surrogate::kMultiGauss:
      f(std::integral_constant<Surrogate, Surrogate::kMultiGauss>{});
      break;
  }
}

}  // namespace eventflow
