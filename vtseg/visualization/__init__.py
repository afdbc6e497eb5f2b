from .visualizer import (InstanceColorTracker, VTSegVisualizer,
                         instance_colors, mask_polygons)

__all__ = [
    'InstanceColorTracker', 'VTSegVisualizer', 'instance_colors',
    'mask_polygons'
]
