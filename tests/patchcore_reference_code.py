"""The PatchCore reference, transcribed as an independent reference for
tests/test_patchcore_reference.py.

Source: amazon-science/patchcore-inspection, commit fcaa92f124fb1ad74a7acf56726decd4b27cbcad:
``src/patchcore/patchcore.py`` (PatchMaker.patchify, the layer fusion of PatchCore._embed),
``src/patchcore/common.py`` (MeanMapper, Preprocessing, Aggregator) and
``src/patchcore/sampler.py`` (GreedyCoresetSampler, ApproximateGreedyCoresetSampler). Kept as
written except: the sampler's two random draws (the ``torch.nn.Linear`` projection's initial
weight from torch's global RNG, the start points from ``np.random.choice``) are given values,
so both sides can use the same draws; numpy/device round trips and the progress bar are left out.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- patchcore.py
class PatchMaker:
    def __init__(self, patchsize, stride=None):
        self.patchsize = patchsize
        self.stride = stride

    def patchify(self, features, return_spatial_info=False):
        padding = int((self.patchsize - 1) / 2)
        unfolder = torch.nn.Unfold(kernel_size=self.patchsize, stride=self.stride, padding=padding, dilation=1)
        unfolded_features = unfolder(features)
        number_of_total_patches = []
        for s in features.shape[-2:]:
            n_patches = (s + 2 * padding - 1 * (self.patchsize - 1) - 1) / self.stride + 1
            number_of_total_patches.append(int(n_patches))
        unfolded_features = unfolded_features.reshape(*features.shape[:2], self.patchsize, self.patchsize, -1)
        unfolded_features = unfolded_features.permute(0, 4, 1, 2, 3)
        if return_spatial_info:
            return unfolded_features, number_of_total_patches
        return unfolded_features


def embed(
    features: list[torch.Tensor], patchsize: int, pretrain_embed_dimension: int, target_embed_dimension: int
) -> torch.Tensor:
    """``PatchCore._embed`` after the backbone: the layers' maps (in ``layers_to_extract_from``
    order) -> (N * h * w, target_embed_dimension) patch features."""
    patch_maker = PatchMaker(patchsize, stride=1)
    features = [patch_maker.patchify(x, return_spatial_info=True) for x in features]
    patch_shapes = [x[1] for x in features]
    features = [x[0] for x in features]
    ref_num_patches = patch_shapes[0]
    for i in range(1, len(features)):
        _features = features[i]
        patch_dims = patch_shapes[i]
        _features = _features.reshape(_features.shape[0], patch_dims[0], patch_dims[1], *_features.shape[2:])
        _features = _features.permute(0, -3, -2, -1, 1, 2)
        perm_base_shape = _features.shape
        _features = _features.reshape(-1, *_features.shape[-2:])
        _features = F.interpolate(
            _features.unsqueeze(1), size=(ref_num_patches[0], ref_num_patches[1]), mode="bilinear", align_corners=False
        )
        _features = _features.squeeze(1)
        _features = _features.reshape(*perm_base_shape[:-2], ref_num_patches[0], ref_num_patches[1])
        _features = _features.permute(0, -2, -1, 1, 2, 3)
        _features = _features.reshape(len(_features), -1, *_features.shape[-3:])
        features[i] = _features
    features = [x.reshape(-1, *x.shape[-3:]) for x in features]
    features = Preprocessing([f.shape[1] for f in features], pretrain_embed_dimension)(features)
    return Aggregator(target_embed_dimension)(features)


# ----------------------------------------------------------------------------- common.py
class Preprocessing(torch.nn.Module):
    def __init__(self, input_dims, output_dim):
        super().__init__()
        self.input_dims = input_dims
        self.output_dim = output_dim
        self.preprocessing_modules = torch.nn.ModuleList()
        for _ in input_dims:
            self.preprocessing_modules.append(MeanMapper(output_dim))

    def forward(self, features):
        _features = []
        for module, feature in zip(self.preprocessing_modules, features):
            _features.append(module(feature))
        return torch.stack(_features, dim=1)


class MeanMapper(torch.nn.Module):
    def __init__(self, preprocessing_dim):
        super().__init__()
        self.preprocessing_dim = preprocessing_dim

    def forward(self, features):
        features = features.reshape(len(features), 1, -1)
        return F.adaptive_avg_pool1d(features, self.preprocessing_dim).squeeze(1)


class Aggregator(torch.nn.Module):
    def __init__(self, target_dim):
        super().__init__()
        self.target_dim = target_dim

    def forward(self, features):
        features = features.reshape(len(features), 1, -1)
        features = F.adaptive_avg_pool1d(features, self.target_dim)
        return features.reshape(len(features), -1)


# ----------------------------------------------------------------------------- sampler.py
class ApproximateGreedyCoresetSampler:
    """``GreedyCoresetSampler`` + ``ApproximateGreedyCoresetSampler``; ``mapper_weight`` (the
    projection Linear's (128, D) weight) and ``start_points`` are the draws given."""

    def __init__(
        self,
        percentage: float,
        mapper_weight: torch.Tensor,
        start_points: list[int],
        number_of_starting_points: int = 10,
        dimension_to_project_features_to: int = 128,
    ):
        if not 0 < percentage < 1:
            raise ValueError("Percentage value not in (0, 1).")
        self.percentage = percentage
        self.number_of_starting_points = number_of_starting_points
        self.dimension_to_project_features_to = dimension_to_project_features_to
        self.mapper_weight = mapper_weight
        self.start_points = start_points

    def _reduce_features(self, features):
        if features.shape[1] == self.dimension_to_project_features_to:
            return features
        mapper = torch.nn.Linear(features.shape[1], self.dimension_to_project_features_to, bias=False)
        with torch.no_grad():
            mapper.weight.copy_(self.mapper_weight)  # the given draw in place of the default init
        return mapper(features)

    def run(self, features: torch.Tensor) -> torch.Tensor:
        if self.percentage == 1:
            return features
        with torch.no_grad():
            reduced_features = self._reduce_features(features)
        sample_indices = self._compute_greedy_coreset_indices(reduced_features)
        return features[sample_indices]

    @staticmethod
    def _compute_batchwise_differences(matrix_a: torch.Tensor, matrix_b: torch.Tensor) -> torch.Tensor:
        a_times_a = matrix_a.unsqueeze(1).bmm(matrix_a.unsqueeze(2)).reshape(-1, 1)
        b_times_b = matrix_b.unsqueeze(1).bmm(matrix_b.unsqueeze(2)).reshape(1, -1)
        a_times_b = matrix_a.mm(matrix_b.T)
        return (-2 * a_times_b + a_times_a + b_times_b).clamp(0, None).sqrt()

    def _compute_greedy_coreset_indices(self, features: torch.Tensor) -> np.ndarray:
        number_of_starting_points = np.clip(self.number_of_starting_points, None, len(features))
        start_points = list(self.start_points)  # np.random.choice(len(features), n, replace=False)
        assert len(start_points) == number_of_starting_points, (len(start_points), number_of_starting_points)
        approximate_distance_matrix = self._compute_batchwise_differences(features, features[start_points])
        approximate_coreset_anchor_distances = torch.mean(approximate_distance_matrix, axis=-1).reshape(-1, 1)
        coreset_indices = []
        num_coreset_samples = int(len(features) * self.percentage)
        with torch.no_grad():
            for _ in range(num_coreset_samples):
                select_idx = torch.argmax(approximate_coreset_anchor_distances).item()
                coreset_indices.append(select_idx)
                coreset_select_distance = self._compute_batchwise_differences(
                    features, features[select_idx : select_idx + 1]
                )
                approximate_coreset_anchor_distances = torch.cat(
                    [approximate_coreset_anchor_distances, coreset_select_distance], dim=-1
                )
                approximate_coreset_anchor_distances = torch.min(
                    approximate_coreset_anchor_distances, dim=1
                ).values.reshape(-1, 1)
        return np.array(coreset_indices)
