import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every vtseg (and mmseg / mmdet) module so that registries are
    filled, and optionally make ``vtseg`` the default scope.

    Args:
        init_default_scope: set the global default scope to ``vtseg`` so that
            registries build from vtseg's node (falling back to mmseg).
    """
    import mmdet.models  # noqa: F401  (mmdet components via 'mmdet.' prefix)
    import mmdet.registry  # noqa: F401
    import mmseg.utils
    mmseg.utils.register_all_modules(init_default_scope=False)
    import mmseg.visualization  # noqa: F401  (not imported by mmseg itself)

    import vtseg.apis  # noqa: F401
    import vtseg.datasets  # noqa: F401
    import vtseg.engine  # noqa: F401
    import vtseg.evaluation  # noqa: F401
    import vtseg.models  # noqa: F401
    import vtseg.visualization  # noqa: F401

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
