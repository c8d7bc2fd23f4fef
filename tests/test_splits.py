import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.splits import load_split, one_vs_rest_split, save_split


@pytest.fixture(scope="module")
def digits():
    return load_dataset({"loader": "digits"})


def make(digits, cls=3, seed=0, **kw):
    args = {
        "dataset": "digits",
        "class_name": str(cls),
        "train": 0.6667,
        "anomalies_per_other_class": 1.0,
        "candidates": 50,
        "seed": seed,
    }
    args.update(kw)
    return one_vs_rest_split(digits.labels, cls, **args)


def test_digits_are_real_scans(digits):
    assert digits.images.shape == (1797, 8, 8) and digits.images.dtype == np.uint8
    assert np.bincount(digits.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_split_parts_are_disjoint_and_sized_as_documented(digits):
    split = make(digits)
    n_class = int((digits.labels == 3).sum())
    n_train = round(0.6667 * n_class)
    n_val = (n_class - n_train) // 2
    assert len(split.train) == n_train
    assert (split.val_labels == 0).sum() == n_val == (split.test_labels == 0).sum()
    # the same number of anomalies from each of the nine other classes, in val and in test
    for ids, y in ((split.val_ids, split.val_labels), (split.test_ids, split.test_labels)):
        other = digits.labels[ids[y == 1]]
        assert sorted(np.bincount(other, minlength=10)[[c for c in range(10) if c != 3]]) == [n_val] * 9
        assert (digits.labels[ids[y == 0]] == 3).all()
    assert not set(split.train) & set(split.val_ids)
    assert not set(split.train) & set(split.test_ids)
    assert not set(split.val_ids) & set(split.test_ids)
    assert set(split.candidates) <= set(split.train) and len(split.candidates) == 50


def test_split_is_seeded(digits):
    a, b, c = make(digits, seed=1), make(digits, seed=1), make(digits, seed=2)
    assert a.to_dict() == b.to_dict()
    assert a.train.tolist() != c.train.tolist()


def test_split_round_trips_through_its_file(digits, tmp_path):
    split = make(digits)
    save_split(split, tmp_path / "s.json", {"seed": 0})
    assert load_split(tmp_path / "s.json").to_dict() == split.to_dict()


def test_overlapping_split_file_is_rejected(digits, tmp_path):
    split = make(digits)
    split.test_ids[0] = split.train[0]
    save_split(split, tmp_path / "bad.json")
    with pytest.raises(ValueError, match="bad.json: train and test share"):
        load_split(tmp_path / "bad.json")


def test_too_few_other_images_is_a_clear_error(digits):
    with pytest.raises(ValueError, match="anomalies_per_other_class"):
        make(digits, anomalies_per_other_class=5.0)


# official images per class (train + test files): the paper's protocol must fit them
OFFICIAL_CLASS_SIZES = {
    "cifar10": [6000] * 10,
    "cifar100": [3000] * 20,  # the 20 superclasses
    "mnist": [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958],
    "fashion_mnist": [7000] * 10,
}


@pytest.mark.parametrize("dataset", sorted(OFFICIAL_CLASS_SIZES))
def test_paper_config_splits_fit_the_official_class_sizes(dataset):
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).parents[1] / "config" / "paper.yaml").read_text())["datasets"][dataset]
    labels = np.repeat(np.arange(len(OFFICIAL_CLASS_SIZES[dataset])), OFFICIAL_CLASS_SIZES[dataset])
    for cls in range(len(OFFICIAL_CLASS_SIZES[dataset])):
        split = one_vs_rest_split(
            labels, cls, dataset=dataset, class_name=str(cls), candidates=cfg["candidates"], seed=0, **cfg["split"]
        )
        assert len(split.val_ids) > 0 and len(split.candidates) == cfg["candidates"]
