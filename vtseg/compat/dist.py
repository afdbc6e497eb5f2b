"""CPU distributed runs for mmengine 0.10.7.

mmengine's ``_init_dist_pytorch`` always calls ``torch.cuda.set_device``,
which fails on a CPU-only torch. When CUDA is absent we initialise the
process group (gloo, from the ``env://`` variables torchrun sets) without
touching CUDA. With CUDA available mmengine's function runs unchanged.
"""
import torch
import torch.distributed as torch_dist


def install() -> None:
    # on use: vtseg.compat loads before any mmengine / mmcv module
    import mmengine.dist.utils as dist_utils
    if getattr(dist_utils._init_dist_pytorch, '_vtseg_cpu', False):
        return
    original = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':  # nccl needs GPUs; gloo is the CPU backend
            backend = 'gloo'
        torch.distributed.init_process_group(backend=backend, **kwargs)

    _init_dist_pytorch._vtseg_cpu = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch


def destroy_process_group() -> None:
    """End the process group of a distributed run, if any.

    Neither mmengine's Runner nor torchrun does this; a gloo process group
    left to interpreter shutdown can abort the process after the run has
    finished ("terminate called without an active exception", exit code
    -6), which torchrun reports as a failed run."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
