// 2-D convolution on oneDNN as XLA FFI handlers: forward, input gradient (backward data) and
// kernel gradient (backward weights). Activations NHWC, kernels HWIO, float32; strides and
// padding (pixels) are attributes, and `threads`: the OpenMP threads of each call (0: OpenMP's
// default; a mesh of several devices on one CPU gives each device's calls its share of the
// cores). Built and loaded by egm/nets/onednn_build.py.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

// From libgomp, which oneDNN's `-gomp` build runs on (loaded with libdnnl).
extern "C" void omp_set_num_threads(int);

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
// float32 arrays of rank 4 (NHWC activations, HWIO kernels); XLA checks the rank.
using Rank4 = ffi::Buffer<ffi::F32, 4>;
using Rank4Result = ffi::ResultBuffer<ffi::F32, 4>;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One layer's geometry: batch, input/output size and channels, kernel, stride, padding, and
// the threads its primitives are built for.
struct Geometry {
  int64_t n, h, w, c, oh, ow, f, kh, kw, sh, sw, pt, pb, pl, pr, threads;
  auto Key() const {
    return std::make_tuple(n, h, w, c, oh, ow, f, kh, kw, sh, sw, pt, pb, pl, pr, threads);
  }
  memory::desc Src(tag t = tag::nhwc) const { return {{n, c, h, w}, dt::f32, t}; }
  memory::desc Dst(tag t = tag::nhwc) const { return {{n, f, oh, ow}, dt::f32, t}; }
  memory::desc Wei(tag t = tag::hwio) const { return {{f, c, kh, kw}, dt::f32, t}; }
  memory::dims Strides() const { return {sh, sw}; }
  memory::dims PadL() const { return {pt, pl}; }
  memory::dims PadR() const { return {pb, pr}; }
};

// The three primitives of one geometry, built once and reused.
struct Layer {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
};

Layer& GetLayer(const Geometry& g) {
  static std::mutex mutex;
  static std::map<decltype(g.Key()), std::unique_ptr<Layer>> layers;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = layers[g.Key()];
  if (!slot) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto& e = Engine();
    auto algo = dnnl::algorithm::convolution_direct;
    auto fwd_pd = dnnl::convolution_forward::primitive_desc(
        e, dnnl::prop_kind::forward_training, algo, g.Src(), g.Wei(tag::any), g.Dst(),
        g.Strides(), g.PadL(), g.PadR(), attr);
    auto bd_pd = dnnl::convolution_backward_data::primitive_desc(
        e, algo, g.Src(), g.Wei(tag::any), g.Dst(), g.Strides(), g.PadL(), g.PadR(), fwd_pd,
        attr);
    auto bw_pd = dnnl::convolution_backward_weights::primitive_desc(
        e, algo, g.Src(), g.Wei(tag::any), g.Dst(), g.Strides(), g.PadL(), g.PadR(), fwd_pd,
        attr);
    slot.reset(new Layer{fwd_pd, bd_pd, bw_pd, dnnl::convolution_forward(fwd_pd),
                         dnnl::convolution_backward_data(bd_pd),
                         dnnl::convolution_backward_weights(bw_pd)});
  }
  return *slot;
}

// Uninitialised 64-byte-aligned bytes (scratchpads and reordered weights), freed on scope exit.
struct FreeBytes {
  void operator()(void* p) const { std::free(p); }
};
using Bytes = std::unique_ptr<void, FreeBytes>;
Bytes Allocate(size_t size) { return Bytes(std::aligned_alloc(64, (size / 64 + 1) * 64)); }

// `user` memory as the primitive wants it: itself, or a reordered copy held in `holder`.
memory AsWanted(memory user, const memory::desc& wanted, Bytes& holder, dnnl::stream& s) {
  if (user.get_desc() == wanted) return user;
  holder = Allocate(wanted.get_size());
  memory m(wanted, Engine(), holder.get());
  dnnl::reorder(user, m).execute(s, user, m);
  return m;
}

// Runs `body`, turning a oneDNN exception into an XLA error that names the layer's failure.
template <typename Body>
ffi::Error Guarded(Body body) {
  try {
    body();
    return ffi::Error::Success();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("egm oneDNN convolution: ") + e.what());
  }
}

// The geometry of a call; sets this thread's OpenMP thread count first where `threads` > 0
// (oneDNN reads it when it builds and when it runs a primitive).
Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> y,
                      ffi::Span<const int64_t> k, int64_t sh, int64_t sw, int64_t pt,
                      int64_t pb, int64_t pl, int64_t pr, int64_t threads) {
  if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
  return {x[0], x[1], x[2], x[3], y[1], y[2], y[3], k[0], k[1], sh, sw, pt, pb, pl, pr, threads};
}

ffi::Error Forward(Rank4 x, Rank4 k, Rank4Result y, int64_t sh, int64_t sw, int64_t pt,
                   int64_t pb, int64_t pl, int64_t pr, int64_t threads) {
  return Guarded([&] {
    Geometry g = MakeGeometry(x.dimensions(), y->dimensions(), k.dimensions(), sh, sw, pt, pb,
                              pl, pr, threads);
    Layer& layer = GetLayer(g);
    dnnl::stream s(Engine());
    memory src(g.Src(), Engine(), x.typed_data());
    memory dst(g.Dst(), Engine(), y->typed_data());
    Bytes wbuf, pad = Allocate(layer.fwd_pd.scratchpad_desc().get_size());
    memory wei = AsWanted(memory(g.Wei(), Engine(), k.typed_data()), layer.fwd_pd.weights_desc(),
                          wbuf, s);
    memory scratch(layer.fwd_pd.scratchpad_desc(), Engine(), pad.get());
    layer.fwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst},
                          {DNNL_ARG_SCRATCHPAD, scratch}});
    s.wait();
  });
}

ffi::Error BackwardData(Rank4 dy, Rank4 k, Rank4Result dx, int64_t sh, int64_t sw, int64_t pt,
                        int64_t pb, int64_t pl, int64_t pr, int64_t threads) {
  return Guarded([&] {
    Geometry g = MakeGeometry(dx->dimensions(), dy.dimensions(), k.dimensions(), sh, sw, pt, pb,
                              pl, pr, threads);
    Layer& layer = GetLayer(g);
    dnnl::stream s(Engine());
    memory diff_dst(g.Dst(), Engine(), dy.typed_data());
    memory diff_src(g.Src(), Engine(), dx->typed_data());
    Bytes wbuf, pad = Allocate(layer.bwd_data_pd.scratchpad_desc().get_size());
    memory wei = AsWanted(memory(g.Wei(), Engine(), k.typed_data()),
                          layer.bwd_data_pd.weights_desc(), wbuf, s);
    memory scratch(layer.bwd_data_pd.scratchpad_desc(), Engine(), pad.get());
    layer.bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, wei},
                               {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_SCRATCHPAD, scratch}});
    s.wait();
  });
}

ffi::Error BackwardWeights(Rank4 x, Rank4 dy, Rank4Result dk, int64_t sh, int64_t sw,
                           int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t threads) {
  return Guarded([&] {
    Geometry g = MakeGeometry(x.dimensions(), dy.dimensions(), dk->dimensions(), sh, sw, pt, pb,
                              pl, pr, threads);
    Layer& layer = GetLayer(g);
    dnnl::stream s(Engine());
    memory src(g.Src(), Engine(), x.typed_data());
    memory diff_dst(g.Dst(), Engine(), dy.typed_data());
    memory user_dw(g.Wei(), Engine(), dk->typed_data());
    auto wanted = layer.bwd_weights_pd.diff_weights_desc();
    Bytes wbuf, pad = Allocate(layer.bwd_weights_pd.scratchpad_desc().get_size());
    memory dw = user_dw;
    if (wanted != user_dw.get_desc()) {
      wbuf = Allocate(wanted.get_size());
      dw = memory(wanted, Engine(), wbuf.get());
    }
    memory scratch(layer.bwd_weights_pd.scratchpad_desc(), Engine(), pad.get());
    layer.bwd_weights.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
                                  {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_SCRATCHPAD, scratch}});
    if (dw != user_dw) dnnl::reorder(dw, user_dw).execute(s, dw, user_dw);
    s.wait();
  });
}

}  // namespace

#define EGM_CONV_ATTRS                                                                 \
  .Attr<int64_t>("stride_h").Attr<int64_t>("stride_w").Attr<int64_t>("pad_top")         \
      .Attr<int64_t>("pad_bottom").Attr<int64_t>("pad_left").Attr<int64_t>("pad_right")        \
      .Attr<int64_t>("threads")

XLA_FFI_DEFINE_HANDLER_SYMBOL(EgmConvForward, Forward,
                              ffi::Ffi::Bind().Arg<Rank4>().Arg<Rank4>().Ret<Rank4>()
                                  EGM_CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(EgmConvBackwardData, BackwardData,
                              ffi::Ffi::Bind().Arg<Rank4>().Arg<Rank4>().Ret<Rank4>()
                                  EGM_CONV_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(EgmConvBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind().Arg<Rank4>().Arg<Rank4>().Ret<Rank4>()
                                  EGM_CONV_ATTRS);
