"""Checkpoint saving that survives a kill at any moment."""
import os
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from vtseg.registry import HOOKS

__all__ = ['AtomicCheckpointHook', 'fsync_path', 'write_text_atomic',
           'TMP_SUFFIX']

#: suffix of a checkpoint being written (``.<name>.tmp``; never ``*.pth``,
#: so ``--resume`` and the tools' "work dir holds checkpoints" check never
#: take it for a checkpoint)
TMP_SUFFIX = '.tmp'


def fsync_path(path: str) -> None:
    """Flush a file's (or a directory's) data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``: write a temporary file
    next to it, fsync, rename over ``path`` (atomic on POSIX), fsync the
    folder. A reader sees the old or the new content, never a mix."""
    tmp = f'{path}{TMP_SUFFIX}'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(osp.dirname(osp.abspath(path)))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with atomic saves (same arguments).

    mmengine's hook deletes the oldest checkpoint *before* writing the new
    one, writes the file in place and then ``last_checkpoint``; with
    ``max_keep_ckpts=1`` a kill during the save leaves no checkpoint while
    ``last_checkpoint`` names a deleted file. Here every save of a local
    checkpoint is, in this order:

    1. written to ``.<name>.tmp`` in the same folder, fsync'ed;
    2. renamed to ``<name>`` (atomic), folder fsync'ed;
    3. ``last_checkpoint`` replaced atomically (:func:`write_text_atomic`);
    4. checkpoints beyond ``max_keep_ckpts`` removed, including older ones
       of this file-name template that a kill between 3 and 4 left behind.

    So after a kill at any moment the work dir holds the last complete
    checkpoint and ``last_checkpoint`` names a complete file;
    ``tools/train.py --resume`` continues from it. Leftover ``*.tmp`` files
    of a killed save are removed at the start of the next run. Remote
    backends (``backend_args`` other than local) fall back to mmengine's
    behaviour. ``tools/train.py`` uses this hook in place of a plain
    ``CheckpointHook`` (docs/reliability.md#resume-guarantee).
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not (self._is_local() and is_main_process()
                and osp.isdir(self.out_dir)):
            return
        stale = [
            f for f in os.listdir(self.out_dir)
            if f.startswith('.') and f.endswith(TMP_SUFFIX)
            and self._step_of(f[1:-len(TMP_SUFFIX)]) is not None
        ]
        for f in stale:
            os.remove(osp.join(self.out_dir, f))
        if stale:
            runner.logger.info(
                f'removed {len(stale)} incomplete checkpoint file(s) of an '
                f'interrupted save: {", ".join(sorted(stale))}')

    def _is_local(self) -> bool:
        return self.file_client_args is None and isinstance(
            getattr(self, 'file_backend', None), LocalBackend)

    def _step_of(self, filename: str):
        """The step in ``filename`` if it matches ``filename_tmpl``."""
        pattern = re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)')
        m = re.fullmatch(pattern, filename)
        return int(m.group(1)) if m else None

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        # Same bookkeeping as mmengine (keep_ckpt_ids goes into the saved
        # message hub, so a resumed run knows what to prune), but the
        # pruning happens after the new checkpoint is complete.
        prune = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                prune.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        tmp_filename = f'.{ckpt_filename}{TMP_SUFFIX}'
        runner.save_checkpoint(
            self.out_dir,
            tmp_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        tmp = osp.join(self.out_dir, tmp_filename)
        fsync_path(tmp)
        os.replace(tmp, self.last_ckpt)
        fsync_path(self.out_dir)
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        if self.max_keep_ckpts > 0:
            self._prune(runner, step, prune)

    def _prune(self, runner, step, prune) -> None:
        """Remove the checkpoints popped from ``keep_ckpt_ids`` and older
        ones of this template that are not kept (left by a kill between
        the save and the pruning)."""
        keep = set(self.keep_ckpt_ids)
        names = {self.filename_tmpl.format(s) for s in prune}
        for f in os.listdir(self.out_dir):
            s = self._step_of(f)
            if s is not None and s < step and s not in keep:
                names.add(f)
        for name in sorted(names):
            path = osp.join(self.out_dir, name)
            if osp.isfile(path):
                os.remove(path)
