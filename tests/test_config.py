"""Config validation: every bad value is rejected before any job runs, naming the key."""

import copy

import pytest
import yaml

from protolib.config import ConfigError, load, validate
from tests.helpers import REPO, small_config


def base(tmp_path):
    return small_config(tmp_path / "results")


def test_shipped_configs_are_valid():
    for path in [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml"))]:
        if path.name == "paper.yaml":
            continue  # needs the user's data roots
        load(path)


def test_defaults_are_filled_in_except_hyper_parameters(tmp_path):
    """Run settings get the schema's defaults; a detector's or selector's hyper-parameters keep
    theirs in the class's signature (one place), so the block stays as written."""
    from protolib.selection import make_selector

    config = validate(base(tmp_path))
    assert config["datasets"]["digits"]["split"]["anomalies_per_other_class"] == 1.0
    assert config["models"]["knn"] == {"detector": "knn", "backbone": "pixels", "k": 2}
    assert config["selection"]["evolutionary"] == {"population": 40, "generations": 15}
    assert make_selector("evolutionary", config["selection"]).fitness_name == "paper"


def test_gpu_runtimes_default_per_rule_and_family(tmp_path):
    """One entry per GPU rule or family; evaluate_<method> and transfer_<name> take their
    family's unless named themselves (protolib.slurm.runtime_minutes, the rules' one source)."""
    from protolib.slurm import runtime_minutes

    config = validate(base(tmp_path))
    assert config["runtime_minutes"] == {
        "device_check": 10,
        "features": 60,
        "score_chunk": 60,
        "evaluate": 120,
        "evaluate_full": 60,
        "transfer": 180,
    }
    assert runtime_minutes(config, "evaluate_random") == 120
    assert runtime_minutes(config, "evaluate_full") == 60
    assert runtime_minutes(config, "transfer_rsna_to_chexpert") == 180
    config = base(tmp_path)
    config["runtime_minutes"] = {"evaluate_random": 240, "evaluate": 30}
    config = validate(config)
    assert runtime_minutes(config, "evaluate_random") == 240
    assert runtime_minutes(config, "evaluate_gmm") == 30
    assert runtime_minutes(config, "features") == 60
    with pytest.raises(KeyError, match="runtime_minutes: no entry for GPU rule 'device_probe'"):
        runtime_minutes(config, "device_probe")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(resluts="x"), r"<top level>: Additional properties .*'resluts'"),
        (lambda c: c["selection"].update(M="5"), r"selection\.M: '5' is not of type 'array'"),
        (
            lambda c: c["selection"].update(methods=["greedy", "evolutionry"]),
            r"selection\.methods: unknown method 'evolutionry'; allowed: .*evolutionary",
        ),
        (lambda c: c["models"]["knn"].update(detector="pandaa"), r"models\.knn\.detector: unknown detector 'pandaa'"),
        (lambda c: c["models"]["knn"].update(backbone="vgg"), r"models\.knn\.backbone: unknown backbone 'vgg'"),
        (
            lambda c: c["datasets"]["digits"].update(loader="cifar11"),
            r"datasets\.digits\.loader: unknown dataset 'cifar11'",
        ),
        (lambda c: c["datasets"]["digits"].update(classes=[]), r"datasets\.digits\.classes"),
        (lambda c: c["datasets"]["digits"].update(classes=[42]), r"datasets\.digits\.classes: .*42"),
        (
            lambda c: c["selection"].update(M=[1, 50]),
            r"selection\.M: 50 is larger than datasets\.digits\.candidates = 30",
        ),
        (
            lambda c: c["runs"].append({"dataset": "mnist", "model": "knn"}),
            r"runs\[1\]\.dataset: 'mnist' is not a key of datasets",
        ),
        (
            lambda c: c["datasets"]["digits"].update(root="/no/such/folder"),
            r"datasets\.digits\.root: folder '/no/such/folder' does not exist",
        ),
        (
            lambda c: c["models"]["knn"].update(weights="/no/such.pth"),
            r"models\.knn\.weights: file '/no/such.pth' not found",
        ),
        (
            lambda c: c.update(runtime_minutes={"evaluate_random": 0}),
            r"runtime_minutes\.evaluate_random: 0 is less than the minimum of 1",
        ),
        (lambda c: c.update(runtime_minutes={"selec_random": 30}), r"runtime_minutes: 'selec_random' does not match"),
        (
            lambda c: c["selection"]["evolutionary"].update(population="many"),
            r"selection\.evolutionary\.population: 'many' is not of type 'integer'",
        ),
        (
            lambda c: c["models"]["knn"].update(steps=5),
            r"models\.knn\.steps: not a setting of detector 'knn'; "
            r"allowed: backbone, batch_size, image_size, k, precision, weights$",
        ),
        (
            lambda c: c["models"]["knn"].update(detector="panda", backbone="resnet18", k=2, stpes=5),
            r"models\.knn\.stpes: not a setting of detector 'panda'; allowed: .*, steps, ",
        ),
        (
            lambda c: c["selection"]["evolutionary"].update(generation=5),
            r"selection\.evolutionary\.generation: not a setting of selection method 'evolutionary'; allowed: "
            r"crossover_probability, fitness, generations, population$",
        ),
        (
            lambda c: c["selection"].update(gmmm={"pool": "train"}),
            r"selection\.gmmm: not a setting of selection and not a selection method; allowed: M, methods, .*gmm",
        ),
        (lambda c: c["models"]["knn"].update(detector="fae"), r"models\.knn\.k: not a setting of detector 'fae'"),
        (
            lambda c: c["models"].update(knn={"detector": "rd"}),
            r"models\.knn\.backbone: missing; detector 'rd' would use 'wide_resnet50_2' and the feature cache",
        ),
    ],
)
def test_bad_values_are_rejected_with_the_key(tmp_path, mutate, message):
    config = base(tmp_path)
    mutate(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_an_unknown_loader_is_one_problem(tmp_path):
    config = base(tmp_path)
    config["datasets"]["digits"]["loader"] = "cifar11"
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert "datasets.digits.loader: unknown dataset 'cifar11'" in str(err.value)
    assert "datasets.digits.classes" not in str(err.value)  # not its classes as well


def test_config_file_with_a_typo_names_the_file_and_key(tmp_path):
    config = base(tmp_path)
    config["selection"]["methods"] = ["greedy", "gmn"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"study\.yaml is invalid:\n  selection\.methods: unknown method 'gmn'"):
        load(path)


def test_manual_needs_ids_for_each_dataset(tmp_path):
    config = base(tmp_path)
    config["selection"]["methods"] = ["manual"]
    with pytest.raises(ConfigError, match=r"selection\.manual\.digits"):
        validate(copy.deepcopy(config))
    config["selection"]["manual"] = {"digits": {"0": [1, 2]}}
    with pytest.raises(ConfigError, match=r"selection\.manual\.digits\.0: 2 ids, fewer than the largest M = 5"):
        validate(config)


def test_cli_validates_a_config(tmp_path):
    import subprocess
    import sys

    good = subprocess.run(
        [sys.executable, "-m", "protolib", "validate-config", str(REPO / "config.yaml")], capture_output=True, text=True
    )
    assert good.returncode == 0 and "valid" in good.stdout
    config = base(tmp_path)
    config["selection"]["M"] = [1, 100]
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(config))
    bad = subprocess.run(
        [sys.executable, "-m", "protolib", "validate-config", str(path)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "selection.M: 100 is larger than datasets.digits.candidates = 30" in bad.stderr
