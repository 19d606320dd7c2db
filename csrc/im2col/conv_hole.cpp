// Device-generic parts of the hole convolution: argument checks, the column-buffer chunking and
// the GEMMs (through ATen, so BLAS on the CPU and cuBLAS on the GPU).  Each backend supplies its
// im2col / col2im kernels through ColBackend.
#include "im2col/im2col.h"

#include <cstdlib>

namespace deeplab_caffe {

namespace {

void check_pair(at::IntArrayRef v, const char* name) {
  DC_CHECK_ARG(v.size() == 2, name, " must have 2 values (h, w), got ", v);
}

// A block of images and output rows processed with one column buffer.
struct Chunking {
  int64_t images;  // images per block
  int64_t rows;    // output rows per block
};

Chunking plan_chunks(const HoleGeom& g, int64_t n, int64_t elem_size, int64_t budget) {
  const int64_t per_row = g.col_rows() * g.out_w * elem_size;
  const int64_t per_image = per_row * g.out_h;
  if (per_image <= budget) {
    int64_t nb = std::max<int64_t>(1, std::min<int64_t>(n, budget / std::max<int64_t>(1, per_image)));
    return {nb, g.out_h};
  }
  return {1, std::max<int64_t>(1, std::min<int64_t>(g.out_h, budget / std::max<int64_t>(1, per_row)))};
}

}  // namespace

int64_t col_budget_bytes(int64_t default_mb) {
  const char* env = std::getenv("DEEPLAB_CAFFE_COL_BUDGET_MB");
  int64_t mb = default_mb;
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    DC_CHECK_ARG(end != env && *end == '\0' && v > 0,
                 "DEEPLAB_CAFFE_COL_BUDGET_MB must be a positive integer, got '", env, "'");
    mb = v;
  }
  return mb * 1024 * 1024;
}

HoleGeom make_geom(int64_t channels, int64_t height, int64_t width, at::IntArrayRef kernel,
                   at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef hole) {
  check_pair(kernel, "kernel");
  check_pair(pad, "pad");
  check_pair(stride, "stride");
  check_pair(hole, "hole");
  DC_CHECK_ARG(kernel[0] > 0 && kernel[1] > 0, "kernel must be positive, got ", kernel);
  DC_CHECK_ARG(stride[0] > 0 && stride[1] > 0, "stride must be positive, got ", stride);
  DC_CHECK_ARG(hole[0] > 0 && hole[1] > 0, "hole must be positive, got ", hole);
  DC_CHECK_ARG(pad[0] >= 0 && pad[1] >= 0, "pad must be non-negative, got ", pad);
  HoleGeom g{channels, height, width, kernel[0], kernel[1], pad[0], pad[1],
             stride[0], stride[1], hole[0], hole[1], 0, 0};
  const int64_t ext_h = g.hole_h * (g.kernel_h - 1) + 1;
  const int64_t ext_w = g.hole_w * (g.kernel_w - 1) + 1;
  DC_CHECK_ARG(height + 2 * g.pad_h >= ext_h, "kernel extent ", ext_h, " (kernel_h=", g.kernel_h,
               ", hole_h=", g.hole_h, ") is larger than the padded input height ",
               height + 2 * g.pad_h, " (height=", height, ", pad_h=", g.pad_h, ")");
  DC_CHECK_ARG(width + 2 * g.pad_w >= ext_w, "kernel extent ", ext_w, " (kernel_w=", g.kernel_w,
               ", hole_w=", g.hole_w, ") is larger than the padded input width ",
               width + 2 * g.pad_w, " (width=", width, ", pad_w=", g.pad_w, ")");
  g.out_h = (height + 2 * g.pad_h - ext_h) / g.stride_h + 1;
  g.out_w = (width + 2 * g.pad_w - ext_w) / g.stride_w + 1;
  return g;
}

at::Tensor im2col_hole_impl(const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef pad,
                            at::IntArrayRef stride, at::IntArrayRef hole, const ColBackend& be) {
  check_dim(x, 4, "x", "(N, C, H, W)");
  check_float(x, "x");
  const HoleGeom g = make_geom(x.size(1), x.size(2), x.size(3), kernel, pad, stride, hole);
  auto cols = at::empty({x.size(0), g.col_rows(), g.col_cols()}, x.options());
  if (cols.numel() == 0) return cols;
  be.im2col(x.contiguous(), cols, g, 0, g.out_h);
  return cols;
}

at::Tensor col2im_hole_impl(const at::Tensor& cols, at::IntArrayRef size, at::IntArrayRef kernel,
                            at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef hole,
                            const ColBackend& be) {
  check_dim(cols, 3, "cols", "(N, C*kernel_h*kernel_w, out_h*out_w)");
  check_float(cols, "cols");
  check_pair(size, "size");
  check_pair(kernel, "kernel");
  DC_CHECK_ARG(size[0] >= 0 && size[1] >= 0, "size must be non-negative, got ", size);
  DC_CHECK_ARG(kernel[0] > 0 && kernel[1] > 0, "kernel must be positive, got ", kernel);
  const int64_t taps = kernel[0] * kernel[1];
  DC_CHECK_ARG(cols.size(1) % taps == 0, "cols has ", cols.size(1),
               " rows, not a multiple of kernel_h*kernel_w=", taps);
  const HoleGeom g = make_geom(cols.size(1) / taps, size[0], size[1], kernel, pad, stride, hole);
  DC_CHECK_ARG(cols.size(2) == g.col_cols(), "cols has ", cols.size(2),
               " columns but the geometry gives out_h*out_w=", g.out_h, "*", g.out_w, "=",
               g.col_cols());
  auto x = at::zeros({cols.size(0), g.channels, g.height, g.width}, cols.options());
  if (x.numel() == 0 || cols.numel() == 0) return x;
  be.col2im(cols.contiguous(), x, g, 0, g.out_h);
  return x;
}

namespace {

struct ConvShapes {
  HoleGeom g;
  int64_t n, out_ch, group, out_g, k_g;  // k_g = (C/group)*kh*kw
  bool is_1x1;
};

ConvShapes conv_shapes(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                       at::IntArrayRef pad, at::IntArrayRef hole, int64_t group) {
  check_dim(x, 4, "x", "(N, C, H, W)");
  check_dim(weight, 4, "weight", "(num_output, C/group, kernel_h, kernel_w)");
  check_float(x, "x");
  check_same(x, "x", weight, "weight");
  DC_CHECK_ARG(group > 0, "group must be positive, got ", group);
  const int64_t c = x.size(1), o = weight.size(0);
  DC_CHECK_ARG(c % group == 0, "input channels ", c, " are not divisible by group=", group);
  DC_CHECK_ARG(o % group == 0, "num_output ", o, " is not divisible by group=", group);
  DC_CHECK_ARG(weight.size(1) * group == c, "weight has ", weight.size(1),
               " input channels per group but the input has ", c, " channels in ", group,
               " group(s) (expected weight shape (", o, ", ", c / group, ", kh, kw))");
  ConvShapes s;
  s.g = make_geom(c, x.size(2), x.size(3), {weight.size(2), weight.size(3)}, pad, stride, hole);
  s.n = x.size(0);
  s.out_ch = o;
  s.group = group;
  s.out_g = o / group;
  s.k_g = weight.size(1) * weight.size(2) * weight.size(3);
  // Caffe's 1x1 shortcut: the columns are the input itself.
  s.is_1x1 = weight.size(2) == 1 && weight.size(3) == 1 && s.g.stride_h == 1 &&
             s.g.stride_w == 1 && s.g.pad_h == 0 && s.g.pad_w == 0;
  return s;
}

}  // namespace

at::Tensor conv2d_hole_impl(const at::Tensor& x_in, const at::Tensor& weight_in,
                            const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
                            const ColBackend& be) {
  const ConvShapes s = conv_shapes(x_in, weight_in, stride, pad, hole, group);
  const HoleGeom& g = s.g;
  if (bias.has_value() && bias->defined()) {
    check_same(x_in, "x", *bias, "bias");
    DC_CHECK_ARG(bias->dim() == 1 && bias->size(0) == s.out_ch, "bias must have shape (",
                 s.out_ch, "), got ", bias->sizes());
  }
  auto out = at::empty({s.n, s.out_ch, g.out_h, g.out_w}, x_in.options());
  if (out.numel() == 0) return out;
  const int64_t L = g.col_cols();
  if (x_in.size(1) == 0) {
    out.zero_();
  } else {
    const auto x = x_in.contiguous();
    const auto w = weight_in.contiguous().view({s.group, s.out_g, s.k_g});
    auto out4 = out.view({s.n, s.group, s.out_g, L});
    if (s.is_1x1) {
      const auto xv = x.view({s.n, s.group, s.k_g, L});
      for (int64_t gi = 0; gi < s.group; ++gi) {
        auto dst = out4.select(1, gi);
        at::bmm_out(dst, w[gi].expand({s.n, s.out_g, s.k_g}), xv.select(1, gi));
      }
    } else {
      const Chunking ch = plan_chunks(g, s.n, x.element_size(), be.budget_bytes);
      auto buf = at::empty({ch.images * g.col_rows() * ch.rows * g.out_w}, x.options());
      for (int64_t n0 = 0; n0 < s.n; n0 += ch.images) {
        const int64_t nb = std::min(ch.images, s.n - n0);
        const auto xs = x.narrow(0, n0, nb);
        for (int64_t r0 = 0; r0 < g.out_h; r0 += ch.rows) {
          const int64_t rr = std::min(ch.rows, g.out_h - r0);
          const int64_t lc = rr * g.out_w;
          auto cols = buf.narrow(0, 0, nb * g.col_rows() * lc).view({nb, g.col_rows(), lc});
          be.im2col(xs, cols, g, r0, rr);
          const auto colsg = cols.view({nb, s.group, s.k_g, lc});
          for (int64_t gi = 0; gi < s.group; ++gi) {
            auto dst = out4.narrow(0, n0, nb).select(1, gi).narrow(2, r0 * g.out_w, lc);
            at::bmm_out(dst, w[gi].expand({nb, s.out_g, s.k_g}), colsg.select(1, gi));
          }
        }
      }
    }
  }
  if (bias.has_value() && bias->defined()) out.add_(bias->view({1, s.out_ch, 1, 1}));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_hole_backward_impl(
    const at::Tensor& grad_out_in, const at::Tensor& x_in, const at::Tensor& weight_in,
    at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef hole, int64_t group,
    std::array<bool, 3> mask, const ColBackend& be) {
  const ConvShapes s = conv_shapes(x_in, weight_in, stride, pad, hole, group);
  const HoleGeom& g = s.g;
  check_same(x_in, "x", grad_out_in, "grad_out");
  DC_CHECK_ARG(grad_out_in.dim() == 4 && grad_out_in.size(0) == s.n &&
                   grad_out_in.size(1) == s.out_ch && grad_out_in.size(2) == g.out_h &&
                   grad_out_in.size(3) == g.out_w,
               "grad_out must have shape (", s.n, ", ", s.out_ch, ", ", g.out_h, ", ", g.out_w,
               "), got ", grad_out_in.sizes());
  at::Tensor gx, gw, gb;
  if (mask[2]) gb = grad_out_in.sum({0, 2, 3});
  if (mask[0]) gx = at::zeros_like(x_in, at::MemoryFormat::Contiguous);
  if (mask[1]) gw = at::zeros({s.group, s.out_g, s.k_g}, weight_in.options());
  const bool empty = grad_out_in.numel() == 0 || x_in.numel() == 0;
  if (!empty && (mask[0] || mask[1])) {
    const int64_t L = g.col_cols();
    const auto x = x_in.contiguous();
    const auto w = weight_in.contiguous().view({s.group, s.out_g, s.k_g});
    const auto gout = grad_out_in.contiguous().view({s.n, s.group, s.out_g, L});
    if (s.is_1x1) {
      const auto xv = x.view({s.n, s.group, s.k_g, L});
      for (int64_t gi = 0; gi < s.group; ++gi) {
        if (mask[1]) {
          auto gwg = gw[gi];
          for (int64_t n = 0; n < s.n; ++n) gwg.addmm_(gout[n][gi], xv[n][gi].t());
        }
        if (mask[0]) {
          auto dst = gx.view({s.n, s.group, s.k_g, L}).select(1, gi);
          at::bmm_out(dst, w[gi].t().expand({s.n, s.k_g, s.out_g}), gout.select(1, gi));
        }
      }
    } else {
      const Chunking ch = plan_chunks(g, s.n, x.element_size(), be.budget_bytes);
      const int64_t buf_elems = ch.images * g.col_rows() * ch.rows * g.out_w;
      at::Tensor buf = mask[1] ? at::empty({buf_elems}, x.options()) : at::Tensor();
      at::Tensor dbuf = mask[0] ? at::empty({buf_elems}, x.options()) : at::Tensor();
      for (int64_t n0 = 0; n0 < s.n; n0 += ch.images) {
        const int64_t nb = std::min(ch.images, s.n - n0);
        for (int64_t r0 = 0; r0 < g.out_h; r0 += ch.rows) {
          const int64_t rr = std::min(ch.rows, g.out_h - r0);
          const int64_t lc = rr * g.out_w;
          const auto gchunk = gout.narrow(0, n0, nb).narrow(3, r0 * g.out_w, lc);
          if (mask[1]) {
            auto cols = buf.narrow(0, 0, nb * g.col_rows() * lc).view({nb, g.col_rows(), lc});
            be.im2col(x.narrow(0, n0, nb), cols, g, r0, rr);
            const auto colsg = cols.view({nb, s.group, s.k_g, lc});
            for (int64_t gi = 0; gi < s.group; ++gi) {
              auto gwg = gw[gi];
              for (int64_t n = 0; n < nb; ++n) gwg.addmm_(gchunk[n][gi], colsg[n][gi].t());
            }
          }
          if (mask[0]) {
            auto dcols = dbuf.narrow(0, 0, nb * g.col_rows() * lc).view({nb, g.col_rows(), lc});
            auto dcolsg = dcols.view({nb, s.group, s.k_g, lc});
            for (int64_t gi = 0; gi < s.group; ++gi) {
              auto dst = dcolsg.select(1, gi);
              at::bmm_out(dst, w[gi].t().expand({nb, s.k_g, s.out_g}), gchunk.select(1, gi));
            }
            auto gxs = gx.narrow(0, n0, nb);
            be.col2im(dcols, gxs, g, r0, rr);
          }
        }
      }
    }
  }
  if (mask[1]) gw = gw.view(weight_in.sizes());
  return {gx, gw, gb};
}

}  // namespace deeplab_caffe
