from .visualizer import VTSegVisualizer, instance_colors, mask_polygons

__all__ = ['VTSegVisualizer', 'instance_colors', 'mask_polygons']
