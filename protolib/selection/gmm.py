"""GMM core-set (paper Eq. 5): label-free, from the frozen features alone.

A Gaussian mixture with M components is fitted to the training images' features (optionally
after PCA); for each component mean the nearest training image is taken, never the same image
twice, so the subset always has M members.

``reg_covar`` (1e-4; scikit-learn's default is 1e-6) is added to every variance: a component
that holds one image, or features constant over its images, would otherwise have a (near-)zero
variance and a degenerate likelihood; with M up to 25 components on a few hundred
high-dimensional features that happens. The paper gives no value (its GMM code is not public).
"""

from __future__ import annotations

import numpy as np

from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector


@SELECTORS.register("gmm")
class GMMSelector(Selector):
    name = "gmm"

    def __init__(
        self,
        *,
        covariance_type: str = "diag",
        pca_components: int | None = None,
        pool: str = "train",
        max_iter: int = 100,
        reg_covar: float = 1e-4,
    ) -> None:
        self.covariance_type = covariance_type
        self.pca_components = pca_components
        self.pool = pool
        self.max_iter = max_iter
        self.reg_covar = float(reg_covar)

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        # here: scipy and scikit-learn (~1.5 s) only when gmm selects, not when its config is validated
        from scipy.spatial.distance import cdist
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        if context.pool_features is None or context.pool_ids is None:
            raise ValueError("gmm needs the frozen features of the training pool")
        ids = np.asarray(context.pool_ids)
        z = np.asarray(context.pool_features, dtype=np.float64)
        if self.pool == "candidates":
            keep = np.isin(ids, context.candidates)
            ids, z = ids[keep], z[keep]
        self._check_size(context, M, pool=len(ids))
        seed = int(rng.integers(0, 2**31 - 1))
        if self.pca_components:
            largest = min(z.shape)  # PCA finds at most min(images, dimensions) components
            if self.pca_components > largest:
                raise ValueError(
                    f"selection.gmm.pca_components: {self.pca_components} is more than the {largest} components "
                    f"{len(ids)} pool images of {z.shape[1]} feature dimensions have; at most {largest}"
                )
            z = PCA(n_components=self.pca_components, random_state=seed).fit_transform(z)
        gmm = GaussianMixture(
            n_components=M,
            covariance_type=self.covariance_type,
            max_iter=self.max_iter,
            random_state=seed,
            reg_covar=self.reg_covar,
        ).fit(z)
        distances = cdist(gmm.means_, z, "sqeuclidean")  # (M, N)
        chosen: list[int] = []
        for row in distances:
            for j in np.argsort(row, kind="stable"):
                if j not in chosen:
                    chosen.append(int(j))
                    break
        return Selection(
            ids=[int(ids[j]) for j in chosen],
            fitness=float(gmm.score(z)),
            info={"fitness": "GMM mean log-likelihood", "converged": bool(gmm.converged_), "pool": self.pool},
        )
