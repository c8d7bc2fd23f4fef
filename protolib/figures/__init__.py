"""The paper's figures: which data each shows (``choices``), what the report's rules are made
from (``plan``) and the image figures (``images``).

Line plots (Figs. 1, 2, 6) live in :mod:`protolib.plots`; the image figures (Figs. 3, 4, 5, 7)
in :mod:`protolib.figures.images`, drawn by the one tile-grid drawer :mod:`protolib.figures.grid`
(which also draws ``protolib rank``'s contact sheet). Every figure is written as PNG and PDF; the image figures
also write a sidecar JSON listing the dataset ids of every image shown.
"""
