"""Refuse a model whose heads predict another number of classes than the
dataset has."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from vtseg.registry import HOOKS

__all__ = ['ClassCountCheckHook']


@HOOKS.register_module()
class ClassCountCheckHook(Hook):
    """Before training, validation and testing, compare the ``num_classes``
    of every head of the model (decode heads, DToP stage heads, ...) with the
    number of ``classes`` in the dataset's metainfo, and raise a
    ``ValueError`` naming the module, both counts and the dataset.

    mmdet's ``NumClassCheckHook`` does the same for detectors but not before
    testing; a mismatch there makes mIoU silently wrong (predictions of
    classes the dataset does not have, or classes never predicted).

    Args:
        ignore: module-name suffixes to skip.
    """
    priority = 'VERY_HIGH'

    def __init__(self, ignore=()):
        self.ignore = tuple(ignore)

    def _check(self, runner, dataloader, what: str) -> None:
        dataset = getattr(dataloader, 'dataset', None)
        classes = getattr(dataset, 'metainfo', {}).get('classes')
        if not classes:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else \
            runner.model
        for name, module in model.named_modules():
            n = getattr(module, 'num_classes', None)
            # the segmentor's own num_classes is copied from its head
            if not name or not isinstance(n, int) or \
                    name.endswith(self.ignore):
                continue
            if n != len(classes):
                raise ValueError(
                    f'{name}.num_classes={n} ('
                    f'{type(module).__name__}) does not match the '
                    f'{len(classes)} classes of the {what} dataset '
                    f'{type(dataset).__name__} ({", ".join(classes[:5])}'
                    f'{", ..." if len(classes) > 5 else ""}); set the heads\''
                    ' num_classes in the config')

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_dataloader, 'training')

    def before_val(self, runner) -> None:
        self._check(runner, runner.val_dataloader, 'validation')

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_dataloader, 'test')
