"""Make ``mmcv.ops`` importable on mmcv-lite.

Every ``mmcv/ops/*.py`` loads its kernels with
``ext_loader.load_ext('_ext', [names])``, i.e. ``import mmcv._ext``, which
mmcv-lite does not ship; mmseg and mmdet import ``mmcv.ops`` at import time, so
without it ``import mmseg.models`` fails. When the compiled extension is absent
we register a stand-in ``mmcv._ext`` module:

* the kernels in :data:`PURE_TORCH_KERNELS` run pure-PyTorch implementations
  (:mod:`vtseg.compat.torch_ops`) behind mmcv's unchanged Python wrappers
  (``nms``, ``batched_nms``, ``RoIAlign``/``roi_align``, ``bbox_overlaps``,
  ``sigmoid_focal_loss``);
* mmcv's own pure-PyTorch ops (``point_sample``, ``SimpleRoIAlign``, the
  PyTorch path of ``MultiScaleDeformableAttention``) work as usual;
* any other kernel raises :class:`MissingCompiledOpError` naming the op and how
  to install full mmcv.

With full mmcv installed (``mmcv._ext`` importable) nothing is patched.
"""
import importlib.machinery
import importlib.util
import sys
import types

import torch

from . import torch_ops

FULL_MMCV_HINT = (
    'It needs the compiled ops of full mmcv, which this installation does '
    'not have (mmcv-lite). Install full mmcv 2.1.0 (see docs/install.md, '
    '"Optional: full mmcv"), e.g. `pip install "setuptools<81" && '
    "MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 CFLAGS='-DNDEBUG -O3 -g0 "
    "-fwrapv' pip install --no-build-isolation mmcv==2.1.0`, or use a config "
    'that avoids this op. vtseg provides pure-PyTorch versions of: '
    'nms, batched_nms, roi_align/RoIAlign, bbox_overlaps, sigmoid_focal_loss.')


class MissingCompiledOpError(RuntimeError):
    """A compiled mmcv op was called but only mmcv-lite is installed."""


def has_compiled_mmcv_ops() -> bool:
    """True when the real compiled extension ``mmcv._ext`` is importable."""
    mod = sys.modules.get('mmcv._ext')
    if isinstance(mod, _PureTorchExt):
        return False
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


# ------------------------------------------------- kernels with mmcv signatures
def _nms(boxes, scores, iou_threshold, offset=0):
    return torch_ops.nms(boxes, scores, float(iou_threshold), int(offset))


def _bbox_overlaps(bboxes1, bboxes2, ious, mode=0, aligned=False, offset=0):
    res = torch_ops.bbox_overlaps(bboxes1, bboxes2,
                                  'iou' if mode == 0 else 'iof', aligned,
                                  offset)
    ious.copy_(res.reshape(ious.shape))


def _roi_align_forward(input, rois, output, argmax_y, argmax_x,
                       aligned_height, aligned_width, spatial_scale,
                       sampling_ratio, pool_mode, aligned):
    with torch.no_grad():
        res = torch_ops.roi_align(
            input, rois, (aligned_height, aligned_width), spatial_scale,
            sampling_ratio, 'max' if pool_mode == 0 else 'avg', aligned,
            return_argmax=pool_mode == 0)
    if pool_mode == 0:
        res, ay, ax = res
        argmax_y.copy_(ay)
        argmax_x.copy_(ax)
    output.copy_(res)


def _roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input,
                        aligned_height, aligned_width, spatial_scale,
                        sampling_ratio, pool_mode, aligned):
    if pool_mode == 0:
        grad_input.copy_(
            torch_ops.roi_align_max_backward(grad_output, rois, argmax_y,
                                             argmax_x, grad_input.shape))
        return
    # Average pooling is linear in the input, so the gradient of the forward
    # evaluated on any input (zeros) is exact.
    with torch.enable_grad():
        x = grad_input.new_zeros(grad_input.shape, requires_grad=True)
        out = torch_ops.roi_align(x, rois, (aligned_height, aligned_width),
                                  spatial_scale, sampling_ratio, 'avg',
                                  aligned)
        # no RoI (or only empty ones): the output does not depend on x
        g = torch.autograd.grad(out, x, grad_output, allow_unused=True)[0] \
            if out.requires_grad else None
    if g is None:
        grad_input.zero_()
        return
    grad_input.copy_(g)


def _sigmoid_focal_loss_forward(input, target, weight, output, gamma, alpha):
    with torch.no_grad():
        output.copy_(
            torch_ops.sigmoid_focal_loss(input, target, weight, gamma, alpha))


def _sigmoid_focal_loss_backward(input, target, weight, grad_input, gamma,
                                 alpha):
    with torch.enable_grad():
        x = input.detach().requires_grad_(True)
        loss = torch_ops.sigmoid_focal_loss(x, target, weight, gamma, alpha)
        (g, ) = torch.autograd.grad(loss.sum(), x)
    grad_input.copy_(g)


PURE_TORCH_KERNELS = {
    'nms': _nms,
    'bbox_overlaps': _bbox_overlaps,
    'roi_align_forward': _roi_align_forward,
    'roi_align_backward': _roi_align_backward,
    'sigmoid_focal_loss_forward': _sigmoid_focal_loss_forward,
    'sigmoid_focal_loss_backward': _sigmoid_focal_loss_backward,
    'get_compiler_version': lambda: 'none (mmcv-lite + vtseg pure-PyTorch ops)',
    'get_compiling_cuda_version': lambda: 'not compiled',
}


def _missing(name: str):

    def kernel(*args, **kwargs):
        raise MissingCompiledOpError(
            f'mmcv op kernel `{name}` is not available. {FULL_MMCV_HINT}')

    kernel.__name__ = name
    return kernel


class _PureTorchExt(types.ModuleType):
    """Stand-in for ``mmcv._ext``: pure-PyTorch kernels, clear errors else."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        fn = PURE_TORCH_KERNELS.get(name) or _missing(name)
        setattr(self, name, fn)
        return fn


def install() -> bool:
    """Register the stand-in ``mmcv._ext`` when compiled ops are absent.

    Returns:
        True if the stand-in was installed (or already was), False when full
        mmcv provides the compiled ops and nothing was changed.
    """
    if isinstance(sys.modules.get('mmcv._ext'), _PureTorchExt):
        return True
    if has_compiled_mmcv_ops():
        return False
    import mmcv  # noqa: F401  (parent package must exist first)
    ext = _PureTorchExt(
        'mmcv._ext', 'vtseg pure-PyTorch stand-in for the compiled mmcv ops')
    # A spec without a loader: importlib / pkgutil lookups succeed, and
    # mmengine's ``mmcv_full_available()`` (find_loader is None) stays False.
    ext.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    sys.modules['mmcv._ext'] = ext
    mmcv._ext = ext
    return True
