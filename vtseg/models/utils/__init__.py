from .token_grid import TokenGrid

__all__ = ['TokenGrid']
