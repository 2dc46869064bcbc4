// CUDA kernels of eventflow::lif_update and eventflow::lif_update_backward (schemas and checks in lif_op.cpp).
//
// One thread per element, grid-stride loops, 64-bit indices. The forward uses the round-to-nearest intrinsics
// (__fmul_rn, __fadd_rn, ...), which the compiler never contracts into a fused multiply-add, so v_out and z_out
// are bit-identical to the eager PyTorch expression on the GPU. The backward writes the per-element gradients
// and the per-element terms of the beta/theta gradients, which at::sum then reduces over B, H, W.
#include "lif_op.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/TensorBody.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

namespace eventflow {
namespace {

constexpr int kThreads = 256;

// Round-to-nearest arithmetic without contraction; float16/bfloat16 compute in float and round after each step,
// exactly like PyTorch's elementwise kernels.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

template <typename scalar_t>
__device__ __forceinline__ scalar_t mul_rn(scalar_t a, scalar_t b) {
  return static_cast<scalar_t>(__fmul_rn(static_cast<float>(a), static_cast<float>(b)));
}
template <typename scalar_t>
__device__ __forceinline__ scalar_t add_rn(scalar_t a, scalar_t b) {
  return static_cast<scalar_t>(__fadd_rn(static_cast<float>(a), static_cast<float>(b)));
}
template <typename scalar_t>
__device__ __forceinline__ scalar_t sub_rn(scalar_t a, scalar_t b) {
  return static_cast<scalar_t>(__fsub_rn(static_cast<float>(a), static_cast<float>(b)));
}

// v_out of one element, in the reference's operation order (see lif_op.h).
template <typename scalar_t>
__device__ __forceinline__ scalar_t lif_v_out(scalar_t current, scalar_t v, scalar_t z, scalar_t beta,
                                              scalar_t theta, bool hard_reset) {
  const scalar_t one(1);
  const scalar_t one_minus_beta = sub_rn(one, beta);
  if (hard_reset) {
    return add_rn(mul_rn(mul_rn(v, beta), sub_rn(one, z)), mul_rn(one_minus_beta, current));
  }
  return sub_rn(add_rn(mul_rn(v, beta), mul_rn(one_minus_beta, current)), mul_rn(z, theta));
}

template <typename scalar_t>
__global__ void lif_forward_kernel(const scalar_t* __restrict__ current, const scalar_t* __restrict__ v,
                                   const scalar_t* __restrict__ z, const scalar_t* __restrict__ beta,
                                   const scalar_t* __restrict__ theta, scalar_t* __restrict__ v_out,
                                   scalar_t* __restrict__ z_out, int64_t numel, int64_t plane_size,
                                   int64_t channels, bool hard_reset) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    const int64_t c = (i / plane_size) % channels;
    const scalar_t vo = lif_v_out(current[i], v[i], z[i], beta[c], theta[c], hard_reset);
    v_out[i] = vo;
    z_out[i] = sub_rn(vo, theta[c]) > scalar_t(0) ? scalar_t(1) : scalar_t(0);
  }
}

template <Surrogate kind, typename scalar_t>
__global__ void lif_backward_kernel(const scalar_t* __restrict__ grad_v_out, const scalar_t* __restrict__ grad_z_out,
                                    const scalar_t* __restrict__ current, const scalar_t* __restrict__ v,
                                    const scalar_t* __restrict__ z, const scalar_t* __restrict__ beta,
                                    const scalar_t* __restrict__ theta, double width,
                                    scalar_t* __restrict__ grad_current, scalar_t* __restrict__ grad_v,
                                    scalar_t* __restrict__ grad_z,  // nullptr when the reset path is detached
                                    at::opmath_type<scalar_t>* __restrict__ beta_terms,
                                    at::opmath_type<scalar_t>* __restrict__ theta_terms, int64_t numel,
                                    int64_t plane_size, int64_t channels, bool hard_reset) {
  using opmath_t = at::opmath_type<scalar_t>;
  const opmath_t one(1);
  const opmath_t w(width);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    const int64_t c = (i / plane_size) % channels;
    const scalar_t vo = lif_v_out(current[i], v[i], z[i], beta[c], theta[c], hard_reset);
    const opmath_t x(sub_rn(vo, theta[c]));
    const opmath_t spike_grad = opmath_t(grad_z_out[i]) * surrogate_grad<kind, opmath_t>(x, w);
    const opmath_t g = opmath_t(grad_v_out[i]) + spike_grad;
    const opmath_t b(beta[c]);
    const opmath_t th(theta[c]);
    const opmath_t vi(v[i]);
    const opmath_t zi(z[i]);
    const opmath_t ii(current[i]);
    grad_current[i] = static_cast<scalar_t>(g * opmath_t(sub_rn(scalar_t(1), beta[c])));
    if (hard_reset) {
      const opmath_t one_minus_z = one - zi;
      grad_v[i] = static_cast<scalar_t>(g * one_minus_z * b);
      if (grad_z != nullptr) grad_z[i] = static_cast<scalar_t>(-(g * (vi * b)));
      beta_terms[i] = g * (vi * one_minus_z - ii);
      theta_terms[i] = -spike_grad;
    } else {
      grad_v[i] = static_cast<scalar_t>(g * b);
      if (grad_z != nullptr) grad_z[i] = static_cast<scalar_t>(-g * th);
      beta_terms[i] = g * (vi - ii);
      theta_terms[i] = -(spike_grad + g * zi);
    }
  }
}

int blocks_for(int64_t numel) {
  return static_cast<int>(std::min<int64_t>((numel + kThreads - 1) / kThreads, int64_t{1} << 20));
}

void check_cuda(const char* op, const at::Tensor& v) {
  TORCH_CHECK(v.device().is_cuda(), op, ": the CUDA kernel got a tensor on ", v.device());
}

std::tuple<at::Tensor, at::Tensor> lif_update_cuda(const at::Tensor& current, const at::Tensor& v,
                                                   const at::Tensor& z, const at::Tensor& beta,
                                                   const at::Tensor& theta, double width, bool hard_reset,
                                                   bool detach, c10::string_view surrogate) {
  (void)detach;
  check_lif_inputs("lif_update", current, v, z, beta, theta, width);
  check_cuda("lif_update", v);
  parse_surrogate(surrogate);
  const c10::cuda::CUDAGuard guard(v.device());

  const at::Tensor current_c = current.contiguous();
  const at::Tensor v_c = v.contiguous();
  const at::Tensor z_c = z.contiguous();
  const at::Tensor beta_c = beta.contiguous();
  const at::Tensor theta_c = theta.contiguous();
  at::Tensor v_out = at::empty(v.sizes(), v.options());
  at::Tensor z_out = at::empty(v.sizes(), v.options());
  const int64_t numel = v.numel();
  if (numel == 0) {
    return {v_out, z_out};
  }
  const int64_t plane_size = v.size(2) * v.size(3);
  const int64_t channels = v.size(1);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, v.scalar_type(), "lif_update_cuda",
                                  [&] {
    lif_forward_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, stream>>>(
        current_c.const_data_ptr<scalar_t>(), v_c.const_data_ptr<scalar_t>(), z_c.const_data_ptr<scalar_t>(),
        beta_c.const_data_ptr<scalar_t>(), theta_c.const_data_ptr<scalar_t>(), v_out.mutable_data_ptr<scalar_t>(),
        z_out.mutable_data_ptr<scalar_t>(), numel, plane_size, channels, hard_reset);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {v_out, z_out};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_update_backward_cuda(
    const at::Tensor& grad_v_out, const at::Tensor& grad_z_out, const at::Tensor& current, const at::Tensor& v,
    const at::Tensor& z, const at::Tensor& beta, const at::Tensor& theta, double width, bool hard_reset, bool detach,
    c10::string_view surrogate) {
  check_lif_inputs("lif_update_backward", current, v, z, beta, theta, width);
  check_lif_grads(grad_v_out, grad_z_out, v);
  check_cuda("lif_update_backward", v);
  const Surrogate kind = parse_surrogate(surrogate);
  const c10::cuda::CUDAGuard guard(v.device());

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
  // Per-element terms of the (C, 1, 1) gradients, in opmath (float for float16/bfloat16).
  const auto opmath_dtype = at::toOpMathType(v.scalar_type());
  at::Tensor beta_terms = at::empty(v.sizes(), v.options().dtype(opmath_dtype));
  at::Tensor theta_terms = at::empty(v.sizes(), v.options().dtype(opmath_dtype));
  const int64_t numel = v.numel();
  const int64_t plane_size = v.size(2) * v.size(3);
  const int64_t channels = v.size(1);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  if (numel > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, v.scalar_type(),
                                    "lif_update_backward_cuda", [&] {
      using opmath_t = at::opmath_type<scalar_t>;
      dispatch_surrogate(kind, [&](auto kind_constant) {
        constexpr Surrogate kKind = decltype(kind_constant)::value;
        lif_backward_kernel<kKind, scalar_t><<<blocks_for(numel), kThreads, 0, stream>>>(
            grad_v_out_c.const_data_ptr<scalar_t>(), grad_z_out_c.const_data_ptr<scalar_t>(),
            current_c.const_data_ptr<scalar_t>(), v_c.const_data_ptr<scalar_t>(), z_c.const_data_ptr<scalar_t>(),
            beta_c.const_data_ptr<scalar_t>(), theta_c.const_data_ptr<scalar_t>(), width,
            grad_current.mutable_data_ptr<scalar_t>(), grad_v.mutable_data_ptr<scalar_t>(),
            detach ? nullptr : grad_z.mutable_data_ptr<scalar_t>(), beta_terms.mutable_data_ptr<opmath_t>(),
            theta_terms.mutable_data_ptr<opmath_t>(), numel, plane_size, channels, hard_reset);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  // (B, C, H, W) -> (C,) -> (C, 1, 1), in beta's dtype.
  at::Tensor grad_beta = at::sum(beta_terms, {0, 2, 3}).view(beta.sizes()).to(beta.scalar_type()).contiguous();
  at::Tensor grad_theta = at::sum(theta_terms, {0, 2, 3}).view(theta.sizes()).to(theta.scalar_type()).contiguous();
  return {grad_current, grad_v, grad_z, grad_beta, grad_theta};
}

}  // namespace

TORCH_LIBRARY_IMPL(eventflow, CUDA, m) {
  m.impl("lif_update", &lif_update_cuda);
  m.impl("lif_update_backward", &lif_update_backward_cuda);
}

}  // namespace eventflow
