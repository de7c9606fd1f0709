"""Every figure the notebooks show. Each function takes data (and an optional matplotlib `ax`)
and returns the `matplotlib.figure.Figure`, so notebooks stay one line per plot and the demo can
save the same figures as PNG."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax=None, figsize=(6, 4)):
    """Return `(figure, ax)`: the given axes, or a new figure with one axes."""
    if ax is None:
        figure, ax = plt.subplots(figsize=figsize)
        return figure, ax
    return ax.figure, ax
