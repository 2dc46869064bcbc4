// Native onnxruntime kernel of the custom operator eventflow.LIF (domain "eventflow", version 1).
//
// One step of the LIF neuron of Hagenaars, Paredes-Vallés & de Croon (NeurIPS 2021, Sec. 3), the same update as
// the model-local ONNX function in eventflow/export/functions.py and as eventflow.neurons.functional:
//
//   inputs   current, v_in, z_in  (B, C, H, W) float32;  beta, theta  (C, 1, 1) float32 (folded at export)
//   outputs  v_out, z_out         (B, C, H, W) float32
//   attribute hard_reset (int, default 1)
//
//   hard reset:  v_out = ((v_in * beta) * (1 - z_in)) + ((1 - beta) * current)
//   soft reset:  v_out = ((v_in * beta) + ((1 - beta) * current)) - (z_in * theta)
//   z_out = 1 where (v_out - theta) > 0, else 0
//
// The operations are those of the ONNX function, in the same order and in float32; compiled without fused
// multiply-adds (-ffp-contract=off) the outputs equal the function's bit for bit.
//
// Build: eventflow.export.ort_library.build() (python -m eventflow.export.ort_library --build). It compiles against
// the onnxruntime C/C++ API headers (see README.md beside this file for where they come from) and links nothing
// from onnxruntime: the API table arrives through RegisterCustomOps, so the library loads into the pip wheel.

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr const char* kDomain = "eventflow";

struct LifKernel {
  explicit LifKernel(const OrtKernelInfo* info) {
    int64_t value = 1;
    // The attribute is optional (default 1, as the function's); a missing attribute leaves value untouched.
    OrtStatus* status = Ort::GetApi().KernelInfoGetAttribute_int64(info, "hard_reset", &value);
    if (status != nullptr) Ort::GetApi().ReleaseStatus(status);
    hard_reset_ = value != 0;
  }

  void Compute(OrtKernelContext* context) {
    Ort::KernelContext ctx(context);
    Ort::ConstValue current = ctx.GetInput(0), v = ctx.GetInput(1), z = ctx.GetInput(2);
    Ort::ConstValue beta = ctx.GetInput(3), theta = ctx.GetInput(4);

    const std::vector<int64_t> shape = v.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.size() != 4) ORT_CXX_API_THROW("eventflow.LIF: v_in must be (B, C, H, W)", ORT_INVALID_ARGUMENT);
    if (current.GetTensorTypeAndShapeInfo().GetShape() != shape || z.GetTensorTypeAndShapeInfo().GetShape() != shape)
      ORT_CXX_API_THROW("eventflow.LIF: current, v_in and z_in must have the same shape", ORT_INVALID_ARGUMENT);
    const int64_t batch = shape[0], channels = shape[1], plane = shape[2] * shape[3];
    if (static_cast<int64_t>(beta.GetTensorTypeAndShapeInfo().GetElementCount()) != channels ||
        static_cast<int64_t>(theta.GetTensorTypeAndShapeInfo().GetElementCount()) != channels)
      ORT_CXX_API_THROW("eventflow.LIF: beta and theta must hold one value per channel, shape (C, 1, 1)",
                        ORT_INVALID_ARGUMENT);

    const float* in = current.GetTensorData<float>();
    const float* vp = v.GetTensorData<float>();
    const float* zp = z.GetTensorData<float>();
    const float* bp = beta.GetTensorData<float>();
    const float* tp = theta.GetTensorData<float>();
    float* v_out = ctx.GetOutput(0, shape).GetTensorMutableData<float>();
    float* z_out = ctx.GetOutput(1, shape).GetTensorMutableData<float>();

    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t c = 0; c < channels; ++c) {
        const float be = bp[c], th = tp[c];
        const float one_minus_beta = 1.0f - be;  // computed per channel, as the (C, 1, 1) tensor op
        const int64_t offset = (b * channels + c) * plane;
        for (int64_t i = offset; i < offset + plane; ++i) {
          const float decayed = vp[i] * be;
          const float drive = one_minus_beta * in[i];
          const float vo = hard_reset_ ? (decayed * (1.0f - zp[i])) + drive : (decayed + drive) - (zp[i] * th);
          v_out[i] = vo;
          z_out[i] = (vo - th) > 0.0f ? 1.0f : 0.0f;
        }
      }
    }
  }

 private:
  bool hard_reset_ = true;
};

struct LifOp : Ort::CustomOpBase<LifOp, LifKernel> {
  void* CreateKernel(const OrtApi& /*api*/, const OrtKernelInfo* info) const { return new LifKernel(info); }
  const char* GetName() const { return "LIF"; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return 5; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

// The domain must outlive every session that uses it: one per process, created on first registration.
std::once_flag g_once;
Ort::CustomOpDomain* g_domain = nullptr;
LifOp* g_lif = nullptr;

}  // namespace

// The one symbol the library exports (it is built with -fvisibility=hidden).
extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                const OrtApiBase* api_base) {
  Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
  try {
    std::call_once(g_once, [] {
      g_lif = new LifOp();
      g_domain = new Ort::CustomOpDomain(kDomain);
      g_domain->Add(g_lif);
    });
    Ort::UnownedSessionOptions(options).Add(*g_domain);
  } catch (const Ort::Exception& e) {
    return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
  }
  return nullptr;
}
