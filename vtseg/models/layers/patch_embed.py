"""Patch embedding and position-table resizing of the vtseg ViT."""
from typing import Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['PatchEmbed', 'resize_pos_embed']


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; pads bottom/right to a multiple of
    the patch size with zeros (in normalised pixel space).

    Args:
        patch_size: patch side p in pixels.
        in_channels: input channels.
        embed_dims: output channels C.
    """

    def __init__(self, patch_size: int, in_channels: int, embed_dims: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, patch_size)

    def grid_size(self, h_img: int, w_img: int) -> Tuple[int, int]:
        """(H, W) patch grid of an (h_img, w_img) image: ceil(h_img / p),
        ceil(w_img / p) (the image is padded bottom / right)."""
        p = self.patch_size
        return -(-int(h_img) // p), -(-int(w_img) // p)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, 3, H_img, W_img) -> ((B, H*W, C), (H, W))."""
        p = self.patch_size
        h_img, w_img = x.shape[-2:]
        H, W = self.grid_size(h_img, w_img)
        pad_h, pad_w = H * p - h_img, W * p - w_img
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), hw


def resize_pos_embed(pos_embed: Tensor, src_hw: Tuple[int, int],
                     dst_hw: Tuple[int, int], mode: str = 'bicubic',
                     antialias: bool = False) -> Tensor:
    """Resize a (1, Hs*Ws, C) patch position table to (1, Hd*Wd, C).

    Interpolation runs in fp32 with ``align_corners=False`` (the DINOv2 /
    HF / mmseg convention); same size returns the input unchanged.
    """
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    C = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, src_hw[0], src_hw[1], C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_hw), mode=mode,
                         align_corners=False, antialias=antialias)
    return grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, -1, C)
