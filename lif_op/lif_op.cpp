// eventflow::lif_update and eventflow::lif_update_backward: the schemas, the input checks and the CPU kernels.
//
// The forward reproduces the PyTorch expression of the reference ConvLIF cell operation by operation (see
// lif_op.h), so that with -ffp-contract=off (no fused multiply-add) its results are bit-identical to eager
// PyTorch on the CPU. Every arithmetic step is done in the tensor's own dtype, as eager PyTorch does; for
// float16/bfloat16 that means rounding after each step, which c10::Half/c10::BFloat16 arithmetic does too.
//
// The backward applies the chain rule to the same expression, with the surrogate s(x) in place of dH/dx:
//   g = grad_v_out + grad_z_out * s(v_out - theta)            (total gradient reaching v_out)
//   hard: dI = g (1 - beta), dv = g (1 - z) beta, dz = -g v beta, dbeta = g (v (1 - z) - I), dtheta = -grad_z_out s
//   soft: dI = g (1 - beta), dv = g beta,         dz = -g theta,  dbeta = g (v - I),           dtheta = -grad_z_out s - g z
// dbeta and dtheta are summed over B, H, W to (C, 1, 1). With detach (the reset path detached, as in the reference)
// dz is not computed: grad_z is then an empty tensor of shape (0,).
#include "lif_op.h"

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/TensorBody.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

namespace eventflow {

Surrogate parse_surrogate(c10::string_view name) {
  if (name == "arctan") return Surrogate::kArctan;
  if (name == "superspike") return Surrogate::kSuperSpike;
  if (name == "triangle") return Surrogate::kTriangle;
  if (name == "multigauss") return Surrogate::kMultiGauss;
  TORCH_CHECK(false, "lif_update: unknown surrogate '", std::string(name.data(), name.size()),
              "'; valid choices are arctan, superspike, triangle, multigauss");
}

void check_lif_inputs(const char* op, const at::Tensor& current, const at::Tensor& v, const at::Tensor& z,
                      const at::Tensor& beta, const at::Tensor& theta, double width) {
  TORCH_CHECK(v.dim() == 4, op, ": v must be (B, C, H, W), got shape ", v.sizes());
  TORCH_CHECK(current.sizes() == v.sizes(), op, ": current has shape ", current.sizes(), " but v has shape ",
              v.sizes(), "; they must match");
  TORCH_CHECK(z.sizes() == v.sizes(), op, ": z has shape ", z.sizes(), " but v has shape ", v.sizes(),
              "; they must match");
  const int64_t channels = v.size(1);
  TORCH_CHECK(beta.dim() == 3 && beta.size(0) == channels && beta.size(1) == 1 && beta.size(2) == 1, op,
              ": beta must have shape (C, 1, 1) = (", channels, ", 1, 1), got ", beta.sizes());
  TORCH_CHECK(theta.dim() == 3 && theta.size(0) == channels && theta.size(1) == 1 && theta.size(2) == 1, op,
              ": theta must have shape (C, 1, 1) = (", channels, ", 1, 1), got ", theta.sizes());
  TORCH_CHECK(at::isFloatingType(v.scalar_type()), op, ": v must be a floating-point tensor, got ",
              v.scalar_type());
  for (const at::Tensor* t : {&current, &z, &beta, &theta}) {
    TORCH_CHECK(t->scalar_type() == v.scalar_type(), op, ": all inputs must share v's dtype ", v.scalar_type(),
                ", got ", t->scalar_type());
    TORCH_CHECK(t->device() == v.device(), op, ": all inputs must be on v's device ", v.device(), ", got ",
                t->device());
  }
  TORCH_CHECK(std::isfinite(width) && width > 0.0, op, ": width must be finite and positive, got ", width);
}

void check_lif_grads(const at::Tensor& grad_v_out, const at::Tensor& grad_z_out, const at::Tensor& v) {
  for (const at::Tensor* t : {&grad_v_out, &grad_z_out}) {
    TORCH_CHECK(t->sizes() == v.sizes(), "lif_update_backward: incoming gradients must have v's shape ", v.sizes(),
                ", got ", t->sizes());
    TORCH_CHECK(t->scalar_type() == v.scalar_type(), "lif_update_backward: incoming gradients must have v's dtype ",
                v.scalar_type(), ", got ", t->scalar_type());
    TORCH_CHECK(t->device() == v.device(), "lif_update_backward: incoming gradients must be on v's device ",
                v.device(), ", got ", t->device());
  }
}

namespace {

// Planes (one (b, c) slice of H*W elements) per parallel task: at least 32768 elements, ATen's grain size.
int64_t planes_per_task(int64_t plane_size) {
  constexpr int64_t kGrainSize = 32768;
  return std::max<int64_t>(1, kGrainSize / std::max<int64_t>(1, plane_size));
}

void check_cpu(const char* op, const at::Tensor& v) {
  TORCH_CHECK(v.device().is_cpu(), op, ": the CPU kernel got a tensor on ", v.device());
}

// One plane of the forward. The two reset modes are separate loops so that each vectorises without a branch;
// __restrict__ holds because the outputs are fresh allocations (inputs may alias each other: they are only read).
template <typename scalar_t>
void lif_forward_plane(const scalar_t* __restrict__ current, const scalar_t* __restrict__ v,
                       const scalar_t* __restrict__ z, scalar_t beta, scalar_t theta, scalar_t* __restrict__ v_out,
                       scalar_t* __restrict__ z_out, int64_t n, bool hard_reset) {
  const scalar_t one(1);
  const scalar_t zero(0);
  const scalar_t one_minus_beta = one - beta;
  if (hard_reset) {
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t vo = v[i] * beta * (one - z[i]) + one_minus_beta * current[i];
      v_out[i] = vo;
      z_out[i] = (vo - theta) > zero ? one : zero;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t vo = v[i] * beta + one_minus_beta * current[i] - z[i] * theta;
      v_out[i] = vo;
      z_out[i] = (vo - theta) > zero ? one : zero;
    }
  }
}

std::tuple<at::Tensor, at::Tensor> lif_update_cpu(const at::Tensor& current, const at::Tensor& v, const at::Tensor& z,
                                                  const at::Tensor& beta, const at::Tensor& theta, double width,
                                                  bool hard_reset, bool detach, c10::string_view surrogate) {
  (void)detach;  // only the backward needs it; it is in the schema so that autograd can see it
  check_lif_inputs("lif_update", current, v, z, beta, theta, width);
  check_cpu("lif_update", v);
  parse_surrogate(surrogate);

  const at::Tensor current_c = current.contiguous();
  const at::Tensor v_c = v.contiguous();
  const at::Tensor z_c = z.contiguous();
  const at::Tensor beta_c = beta.contiguous();
  const at::Tensor theta_c = theta.contiguous();
  at::Tensor v_out = at::empty(v.sizes(), v.options());  // contiguous, as the fake kernel promises
  at::Tensor z_out = at::empty(v.sizes(), v.options());

  const int64_t channels = v.size(1);
  const int64_t plane_size = v.size(2) * v.size(3);
  const int64_t planes = v.size(0) * channels;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, v.scalar_type(), "lif_update_cpu",
                                  [&] {
    const scalar_t* current_p = current_c.const_data_ptr<scalar_t>();
    const scalar_t* v_p = v_c.const_data_ptr<scalar_t>();
    const scalar_t* z_p = z_c.const_data_ptr<scalar_t>();
    const scalar_t* beta_p = beta_c.const_data_ptr<scalar_t>();
    const scalar_t* theta_p = theta_c.const_data_ptr<scalar_t>();
    scalar_t* v_out_p = v_out.mutable_data_ptr<scalar_t>();
    scalar_t* z_out_p = z_out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, planes, planes_per_task(plane_size), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t c = p % channels;
        const int64_t offset = p * plane_size;
        lif_forward_plane<scalar_t>(current_p + offset, v_p + offset, z_p + offset, beta_p[c], theta_p[c],
                                    v_out_p + offset, z_out_p + offset, plane_size, hard_reset);
      }
    });
  });
  return {v_out, z_out};
}

// Per-plane sums of the beta and theta gradients, accumulated in acc_t (double for float32).
template <typename acc_t>
struct PlaneSums {
  acc_t beta = 0;
  acc_t theta = 0;
};

// Elements per chunk of the backward: the element loop (vectorised) writes the beta/theta terms of a chunk to the
// stack, a second loop adds them up in acc_t. One fused loop would not vectorise, since the compiler may not
// reorder a floating-point sum.
constexpr int64_t kChunk = 256;

// One plane of the backward. Element gradients are computed in opmath (float for float16/bfloat16); the forward
// v_out is recomputed exactly as in lif_forward_plane, so the surrogate sees the same x as the forward's spike.
template <Surrogate kind, bool hard_reset, typename scalar_t>
PlaneSums<at::acc_type<scalar_t, false>> lif_backward_plane(
    const scalar_t* __restrict__ grad_v_out, const scalar_t* __restrict__ grad_z_out,
    const scalar_t* __restrict__ current, const scalar_t* __restrict__ v, const scalar_t* __restrict__ z,
    scalar_t beta, scalar_t theta, double width, scalar_t* __restrict__ grad_current,
    scalar_t* __restrict__ grad_v, scalar_t* __restrict__ grad_z, int64_t n) {  // grad_z: nullptr when detached
  using opmath_t = at::opmath_type<scalar_t>;
  using acc_t = at::acc_type<scalar_t, false>;
  const scalar_t one_s(1);
  const scalar_t one_minus_beta_s = one_s - beta;
  const opmath_t one(1);
  const opmath_t b(beta);
  const opmath_t th(theta);
  const opmath_t one_minus_beta(one_minus_beta_s);
  const opmath_t w(width);
  opmath_t beta_terms[kChunk];
  opmath_t theta_terms[kChunk];
  PlaneSums<acc_t> sums;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    for (int64_t k = 0; k < len; ++k) {
      const int64_t i = start + k;
      scalar_t vo_s;
      if constexpr (hard_reset) {
        vo_s = v[i] * beta * (one_s - z[i]) + one_minus_beta_s * current[i];
      } else {
        vo_s = v[i] * beta + one_minus_beta_s * current[i] - z[i] * theta;
      }
      const opmath_t x(static_cast<scalar_t>(vo_s - theta));
      const opmath_t spike_grad = opmath_t(grad_z_out[i]) * surrogate_grad<kind, opmath_t>(x, w);
      const opmath_t g = opmath_t(grad_v_out[i]) + spike_grad;
      const opmath_t vi(v[i]);
      const opmath_t zi(z[i]);
      const opmath_t ii(current[i]);
      grad_current[i] = static_cast<scalar_t>(g * one_minus_beta);
      if constexpr (hard_reset) {
        const opmath_t one_minus_z = one - zi;
        grad_v[i] = static_cast<scalar_t>(g * one_minus_z * b);
        if (grad_z != nullptr) grad_z[i] = static_cast<scalar_t>(-(g * (vi * b)));
        beta_terms[k] = g * (vi * one_minus_z - ii);
        theta_terms[k] = -spike_grad;
      } else {
        grad_v[i] = static_cast<scalar_t>(g * b);
        if (grad_z != nullptr) grad_z[i] = static_cast<scalar_t>(-g * th);
        beta_terms[k] = g * (vi - ii);
        theta_terms[k] = -(spike_grad + g * zi);
      }
    }
    for (int64_t k = 0; k < len; ++k) {
      sums.beta += static_cast<acc_t>(beta_terms[k]);
      sums.theta += static_cast<acc_t>(theta_terms[k]);
    }
  }
  return sums;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_update_backward_cpu(
    const at::Tensor& grad_v_out, const at::Tensor& grad_z_out, const at::Tensor& current, const at::Tensor& v,
    const at::Tensor& z, const at::Tensor& beta, const at::Tensor& theta, double width, bool hard_reset, bool detach,
    c10::string_view surrogate) {
  check_lif_inputs("lif_update_backward", current, v, z, beta, theta, width);
  check_lif_grads(grad_v_out, grad_z_out, v);
  check_cpu("lif_update_backward", v);
  const Surrogate kind = parse_surrogate(surrogate);

  const at::Tensor grad_v_out_c = grad_v_out.contiguous();
  const at::Tensor grad_z_out_c = grad_z_out.contiguous();
  const at::Tensor current_c = current.contiguous();
  const at::Tensor v_c = v.contiguous();
  const at::Tensor z_c = z.contiguous();
  const at::Tensor beta_c = beta.contiguous();
  const at::Tensor theta_c = theta.contiguous();
  at::Tensor grad_current = at::empty(v.sizes(), v.options());
  at::Tensor grad_v = at::empty(v.sizes(), v.options());
  at::Tensor grad_z = detach ? at::empty({0}, v.options()) : at::empty(v.sizes(), v.options());
  at::Tensor grad_beta = at::empty(beta.sizes(), beta.options());
  at::Tensor grad_theta = at::empty(theta.sizes(), theta.options());

  const int64_t batch = v.size(0);
  const int64_t channels = v.size(1);
  const int64_t plane_size = v.size(2) * v.size(3);
  const int64_t planes = batch * channels;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, v.scalar_type(),
                                  "lif_update_backward_cpu", [&] {
    using acc_t = at::acc_type<scalar_t, false>;
    const scalar_t* gvo_p = grad_v_out_c.const_data_ptr<scalar_t>();
    const scalar_t* gzo_p = grad_z_out_c.const_data_ptr<scalar_t>();
    const scalar_t* current_p = current_c.const_data_ptr<scalar_t>();
    const scalar_t* v_p = v_c.const_data_ptr<scalar_t>();
    const scalar_t* z_p = z_c.const_data_ptr<scalar_t>();
    const scalar_t* beta_p = beta_c.const_data_ptr<scalar_t>();
    const scalar_t* theta_p = theta_c.const_data_ptr<scalar_t>();
    scalar_t* gi_p = grad_current.mutable_data_ptr<scalar_t>();
    scalar_t* gv_p = grad_v.mutable_data_ptr<scalar_t>();
    scalar_t* gz_p = detach ? nullptr : grad_z.mutable_data_ptr<scalar_t>();
    // Sums per plane first, then over the batch in a fixed order: the result does not depend on the thread count.
    std::vector<PlaneSums<acc_t>> plane_sums(static_cast<size_t>(planes));
    dispatch_surrogate(kind, [&](auto kind_constant) {
      constexpr Surrogate kKind = decltype(kind_constant)::value;
      at::parallel_for(0, planes, planes_per_task(plane_size), [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          const int64_t c = p % channels;
          const int64_t o = p * plane_size;
          scalar_t* gz_plane = gz_p == nullptr ? nullptr : gz_p + o;  // no offset on a null pointer
          plane_sums[p] = hard_reset
              ? lif_backward_plane<kKind, true, scalar_t>(gvo_p + o, gzo_p + o, current_p + o, v_p + o, z_p + o,
                                                          beta_p[c], theta_p[c], width, gi_p + o, gv_p + o,
                                                          gz_plane, plane_size)
              : lif_backward_plane<kKind, false, scalar_t>(gvo_p + o, gzo_p + o, current_p + o, v_p + o, z_p + o,
                                                           beta_p[c], theta_p[c], width, gi_p + o, gv_p + o,
                                                           gz_plane, plane_size);
        }
      });
    });
    scalar_t* gb_p = grad_beta.mutable_data_ptr<scalar_t>();
    scalar_t* gt_p = grad_theta.mutable_data_ptr<scalar_t>();
    for (int64_t c = 0; c < channels; ++c) {
      acc_t sum_beta = 0;
      acc_t sum_theta = 0;
      for (int64_t bi = 0; bi < batch; ++bi) {
        sum_beta += plane_sums[bi * channels + c].beta;
        sum_theta += plane_sums[bi * channels + c].theta;
      }
      gb_p[c] = static_cast<scalar_t>(sum_beta);
      gt_p[c] = static_cast<scalar_t>(sum_theta);
    }
  });
  return {grad_current, grad_v, grad_z, grad_beta, grad_theta};
}

}  // namespace

TORCH_LIBRARY(eventflow, m) {
  // The fake (meta) kernels and the autograd formula are registered from this Python module.
  m.set_python_module("eventflow.lif_op");
  m.def(
      "lif_update(Tensor current, Tensor v, Tensor z, Tensor beta, Tensor theta, float width, bool hard_reset, "
      "bool detach, str surrogate) -> (Tensor v_out, Tensor z_out)");
  m.def(
      "lif_update_backward(Tensor grad_v_out, Tensor grad_z_out, Tensor current, Tensor v, Tensor z, Tensor beta, "
      "Tensor theta, float width, bool hard_reset, bool detach, str surrogate) -> (Tensor grad_current, Tensor grad_v, "
      "Tensor grad_z, Tensor grad_beta, Tensor grad_theta)");
}

TORCH_LIBRARY_IMPL(eventflow, CPU, m) {
  m.impl("lif_update", &lif_update_cpu);
  m.impl("lif_update_backward", &lif_update_backward_cpu);
}

}  // namespace eventflow
