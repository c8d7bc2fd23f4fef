"""The paper's tables and figures, one module each; each registers its :class:`Figure` on import
(``protolib.figures.registry`` names them lazily). Their writers are in :mod:`protolib.report`."""
