"""Fill the registries: :func:`register_all_modules`.

Rank 3 of the package layout (docs/architecture.md): it imports the rank-2
packages that register components (models, datasets, evaluation, engine,
visualization) and mmseg / mmdet, and nothing above (``vtseg.apis``
re-exports :func:`register_all_modules`, not the other way round).
"""
import datetime
import warnings

import mmdet.models  # noqa: F401  (mmdet components via the 'mmdet.' prefix)
import mmdet.registry  # noqa: F401
import mmseg.utils
import mmseg.visualization  # noqa: F401  (not imported by mmseg itself)
from mmengine import DefaultScope

import vtseg.datasets  # noqa: F401
import vtseg.engine  # noqa: F401
import vtseg.evaluation  # noqa: F401
import vtseg.models  # noqa: F401
import vtseg.visualization  # noqa: F401

__all__ = ['register_all_modules']


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register every vtseg (and mmseg / mmdet) module, and optionally make
    ``vtseg`` the default scope.

    vtseg's own modules are registered by importing this module; the call
    registers mmseg's (``mmseg.utils.register_all_modules``) and sets the
    scope.

    Args:
        init_default_scope: set the global default scope to ``vtseg`` so that
            registries build from vtseg's node (falling back to mmseg).
    """
    mmseg.utils.register_all_modules(init_default_scope=False)
    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('vtseg')
    if never_created:
        DefaultScope.get_instance('vtseg', scope_name='vtseg')
        return
    current = DefaultScope.get_current_instance()
    if current.scope_name != 'vtseg':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "vtseg"; register_all_modules switches it to '
                      '"vtseg".')
        DefaultScope.get_instance(f'vtseg-{datetime.datetime.now()}',
                                  scope_name='vtseg')
