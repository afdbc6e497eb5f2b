"""CUDA paths (skipped without a GPU; CI has none): the same results on the
GPU as on the CPU for the methods' functions and models.

Run on a GPU machine with ``python -m pytest tests/test_cuda.py``."""
import pytest
import torch

from vtseg.compat.torch_ops import nms, roi_align
from vtseg.functional import (bilateral_voting, cluster_hard_labels,
                              cluster_token_sequence, cluster_tokens, ncut,
                              reconstruct_tokens, reconstruction_weights)
from vtseg.models.reducers import expedit_token_stages
from vtseg.models.utils import conv_transpose2d_tokens
from vtseg.registry import MODELS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')
CUDA = torch.device('cuda')


def close(a, b, tol=1e-4):
    torch.testing.assert_close(a.detach().cpu().float(),
                               b.detach().cpu().float(), rtol=tol, atol=tol)


def test_expedit_functions_match_cpu():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 9)
    ctr_c, lab_c = cluster_tokens(x, (5, 4), temperature=0.5)
    ctr_g, lab_g = cluster_tokens(x.to(CUDA), (5, 4), temperature=0.5)
    close(ctr_g, ctr_c)
    assert torch.equal(lab_g.cpu(), lab_c)
    tok = x.flatten(2).transpose(1, 2).contiguous()
    _, mctr, labels = cluster_token_sequence(tok.to(CUDA), (12, 9), (5, 4),
                                             temperature=0.5)
    assert torch.equal(cluster_hard_labels(tok.to(CUDA), mctr, (12, 9),
                                           (5, 4)), labels)
    fb, fa = torch.randn(2, 30, 8), torch.randn(2, 12, 8)
    x_low = torch.randn(2, 12, 6)
    for k in (3, 5, 12):  # k <= 8 takes the CPU argmin path on the CPU
        ref = reconstruct_tokens(x_low, fb, fa, k=k, temperature=0.3)
        out = reconstruct_tokens(x_low.to(CUDA), fb.to(CUDA), fa.to(CUDA),
                                 k=k, temperature=0.3)
        close(out, ref)
        idx_c, w_c = reconstruction_weights(fb, fa, k=k, temperature=0.3)
        idx_g, w_g = reconstruction_weights(fb.to(CUDA), fa.to(CUDA), k=k,
                                            temperature=0.3)
        assert torch.equal(idx_g.cpu().sort(2).values,
                           idx_c.sort(2).values)
    for dtype in (torch.float16, torch.bfloat16):
        out = reconstruct_tokens(x_low.to(CUDA, dtype), fb.to(CUDA, dtype),
                                 fa.to(CUDA, dtype), k=3, temperature=0.3)
        assert out.dtype == dtype and torch.isfinite(out).all()


def tiny_model(restore):
    torch.manual_seed(0)
    vit = MODELS.build(dict(
        type='ViT', img_size=64, patch_size=8, embed_dims=32, depth=4,
        num_heads=2, token_stages=expedit_token_stages(
            cluster_layer=[0, 2], grid=[0.7, 0.6], k=3,
            cluster_temperature=2.0, reconstruct_temperature=2.0,
            restore=restore)))
    vit.init_weights()
    head = MODELS.build(dict(
        type='UpConvHead', in_channels=32, channels=8, up_channels=(16, 8),
        num_classes=2, out_channels=1, threshold=0.5,
        loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=True)))
    return torch.nn.Sequential(vit, head).eval()


@pytest.mark.parametrize('restore', ['backbone', 'head'])
def test_expedit_model_matches_cpu(restore):
    model = tiny_model(restore)
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        ref = model(x)
        out = model.to(CUDA)(x.to(CUDA))
        close(out, ref, 1e-3)
        with torch.autocast('cuda', dtype=torch.bfloat16):
            assert torch.isfinite(model(x.to(CUDA))).all()


def test_conv_transpose_on_tokens_matches_module():
    conv = torch.nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1).to(CUDA)
    x = torch.randn(2, 6, 5, 7, device=CUDA)
    close(conv_transpose2d_tokens(x.flatten(2).transpose(1, 2), (5, 7),
                                  conv), conv(x), 1e-4)


def test_tokencut_and_connectivity_match_cpu():
    torch.manual_seed(1)
    feats = torch.randn(48, 16)
    feats[:20] += 3  # a clear foreground group
    part_c, vec_c, seed_c = ncut(feats, (6, 8))
    part_g, vec_g, seed_g = ncut(feats.to(CUDA), (6, 8))
    assert part_g.device.type == 'cuda' and seed_g == seed_c
    assert torch.equal(part_g.cpu(), part_c)
    close(vec_g, vec_c, 1e-6)
    conn = torch.rand(2, 8 * 2, 20, 24)
    close(bilateral_voting(conn.to(CUDA), (1, 2)),
          bilateral_voting(conn, (1, 2)))


def test_compat_ops_match_cpu():
    torch.manual_seed(2)
    xy = torch.rand(50, 2) * 50
    boxes = torch.cat([xy, xy + torch.rand(50, 2) * 30 + 1], 1)
    scores = torch.rand(50)
    assert torch.equal(nms(boxes.to(CUDA), scores.to(CUDA), 0.5).cpu(),
                       nms(boxes, scores, 0.5))
    feats = torch.randn(2, 4, 20, 24)
    rois = torch.tensor([[0, 1.5, 2.0, 15.0, 12.5], [1, 0.0, 0.0, 23.0, 19.0]])
    close(roi_align(feats.to(CUDA), rois.to(CUDA), (7, 7), 1.0, 2),
          roi_align(feats, rois, (7, 7), 1.0, 2), 1e-5)


@pytest.mark.parametrize('impl', ['pack', 'mask', 'loop'])
def test_dtop_matches_cpu(impl):
    """DToP prunes the same tokens and predicts the same on the GPU (TF32
    off: a token near the threshold must not flip)."""
    from test_dtop import HEADS, X, dtop
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for head in HEADS:
        m = dtop(head, impl)
        x = X[:4]
        with torch.no_grad():
            ref = m.dtop_forward(x)
            out = m.to(CUDA).dtop_forward(x.to(CUDA))
        assert torch.equal(out.finalised.cpu(), ref.finalised), head
        close(out.probs, ref.probs)


def test_token_merging_matches_cpu():
    torch.manual_seed(0)
    vit = MODELS.build(dict(
        type='ViT', img_size=64, patch_size=8, embed_dims=32, depth=4,
        num_heads=2, out_indices=[1, 3],
        token_stages=[dict(type='TokenMerging', after_block=[0, 1, 2],
                           r=[6, 4, 2])])).eval()
    x = torch.randn(3, 3, 48, 56)
    with torch.no_grad():
        ref = vit(x)
        out = vit.to(CUDA)(x.to(CUDA))
    for a, b in zip(out, ref):
        close(a, b)
