"""Each selector's contract, and the evolutionary algorithm's pieces against their definitions."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from protolib.selection import SELECTORS, SelectionContext, make_selector
from protolib.selection.evolutionary import (
    FITNESS,
    AurocFitness,
    BalancedFitness,
    PaperFitness,
    crossover,
    evolve,
    mutate,
    random_population,
)

K, V = 40, 120


@pytest.fixture
def context():
    rng = np.random.default_rng(0)
    labels = (np.arange(V) % 3 == 0).astype(int)
    quality = rng.random(K)
    # anomalies far from every candidate, normals closer to good candidates
    matrix = rng.random((K, V)) + labels[None, :] * 0.5 - quality[:, None] * (1 - labels[None, :]) * 0.5
    from protolib.metrics import rowwise_auroc

    candidates = np.arange(1000, 1000 + K)
    return SelectionContext(
        candidates=candidates,
        score_matrix=matrix,
        val_labels=labels,
        sample_auroc=rowwise_auroc(matrix, labels),
        pool_ids=np.arange(1000, 1000 + 2 * K),
        pool_features=rng.normal(size=(2 * K, 6)),
        manual_ids=[1003, 1001, 1020, 1007, 1011],
        train_ids=np.arange(1000, 1000 + 2 * K),
    )


SETTINGS = {"evolutionary": {"population": 30, "generations": 10}, "random": {"repeats": 3}}


@pytest.mark.parametrize("method", SELECTORS.names())
@pytest.mark.parametrize("M", [1, 5])
def test_selector_contract(context, method, M):
    selector = make_selector(method, SETTINGS)
    a = selector.select(context, M, np.random.default_rng(7))
    b = selector.select(context, M, np.random.default_rng(7))
    assert len(a.ids) == M and len(set(a.ids)) == M
    pool = context.train_ids if method in ("gmm", "typical", "manual") else context.candidates
    assert set(a.ids) <= set(pool.tolist())
    assert a.ids == b.ids, "same seed, same subset"


@pytest.mark.parametrize("method", SELECTORS.names())
def test_m_larger_than_pool_is_a_clear_error(context, method):
    with pytest.raises(ValueError, match="M = 500"):
        make_selector(method, SETTINGS).select(context, 500, np.random.default_rng(0))


def test_greedy_is_top_m_single_sample_auroc(context):
    ids = make_selector("greedy").select(context, 5, np.random.default_rng(0)).ids
    best = context.candidates[np.argsort(-context.sample_auroc, kind="stable")[:5]]
    assert ids == best.tolist()


def test_random_differs_between_seeds(context):
    sel = make_selector("random", SETTINGS)
    assert sel.repeats() == 3
    a = sel.select(context, 5, np.random.default_rng(1)).ids
    b = sel.select(context, 5, np.random.default_rng(2)).ids
    assert a != b


def test_paper_fitness_equals_eq3(context):
    population = random_population(20, K, 5, np.random.default_rng(0))
    y = np.where(context.val_labels > 0, 1.0, -1.0)
    expected = [(y[None, :] * context.score_matrix[s]).max(axis=0).sum() for s in population]
    got = PaperFitness(context.score_matrix, context.val_labels)(population)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("fitness", ["paper", "balanced"])
def test_blocked_eq3_kernel_gives_the_integers_of_the_plain_one(context, fitness):
    """The fast path (column blocks) against the plain rank kernel and the integer definition."""
    from protolib.selection.kernels import subset_max_sum, subset_max_sum_blocked

    fit = FITNESS[fitness](context.score_matrix, context.val_labels)
    fit.BLOCK = 7  # several blocks and a padded last one (V = 120)
    qvalues = np.take_along_axis(fit.qtable.reshape(fit.table.V, K).T, fit.table.ranks.astype(np.intp), axis=0)
    for M in (1, 3, 12):
        population = random_population(50, K, M, np.random.default_rng(M))
        slots = np.arange(50, dtype=np.int64)
        plain, blocked = np.empty(50, np.int64), np.empty(50, np.int64)
        subset_max_sum(fit.table.ranks, fit.qtable, population, slots, plain)
        subset_max_sum_blocked(*fit.blocks(), population, slots, blocked)
        np.testing.assert_array_equal(blocked, plain)
        np.testing.assert_array_equal(blocked, [qvalues[s].max(axis=0).sum() for s in population])


def test_balanced_fitness_equals_class_weighted_eq3(context):
    population = random_population(20, K, 5, np.random.default_rng(0))
    labels = context.val_labels
    w = np.where(labels > 0, 1.0 / (labels > 0).sum(), -1.0 / (labels == 0).sum())
    expected = [(w[None, :] * context.score_matrix[s]).max(axis=0).sum() for s in population]
    got = BalancedFitness(context.score_matrix, labels)(population)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_auroc_fitness_equals_auroc_of_min_aggregated_scores(context):
    population = random_population(20, K, 5, np.random.default_rng(0))
    expected = [roc_auc_score(context.val_labels, context.score_matrix[s].min(axis=0)) for s in population]
    got = AurocFitness(context.score_matrix, context.val_labels)(population)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("values", ["few integers", "wide integers", "floats"])
@pytest.mark.parametrize("anomalous_share", [0.9, 0.5, 0.1])
def test_auroc_fitness_kernel_gives_the_rank_formula_bit_for_bit_with_ties(anomalous_share, values):
    """More val columns than one block, either class the larger, and values that are few
    integers (ties everywhere, one code per bucket), integers over a wide range (many codes per
    bucket, ties across columns) or floats with repeated values: the code-counting kernel equals
    the rank formula on the min-aggregated values exactly."""
    from protolib.metrics import rowwise_auroc

    rng = np.random.default_rng(1)
    k, v = 30, 700
    labels = (rng.random(v) < anomalous_share).astype(int)
    if values == "few integers":
        matrix = rng.integers(0, 12, size=(k, v)).astype(float) + labels[None, :] * rng.integers(0, 3, size=(k, v))
    elif values == "wide integers":
        matrix = rng.integers(0, 10**6, size=(k, v)).astype(float) + labels[None, :] * 2 * 10**5
        matrix[:, ::7] = matrix[:, 1::7][:, : matrix[:, ::7].shape[1]].mean() // 1  # a tied block
    else:
        matrix = rng.normal(size=(k, v)) + labels[None, :] * 0.5
        matrix[rng.random((k, v)) < 0.2] = 0.25  # repeated values within and across columns
    fitness = AurocFitness(matrix, labels)
    assert values == "few integers" or fitness.universe > 8 * v  # buckets hold many codes
    for m in (1, 3, 8):
        population = random_population(50, k, m, rng)
        expected = rowwise_auroc(np.stack([matrix[s].min(axis=0) for s in population]), labels)
        assert np.array_equal(fitness(population), expected), m


def test_crossover_and_mutation_give_valid_subsets():
    rng = np.random.default_rng(0)
    a, b = random_population(200, K, 6, rng), random_population(200, K, 6, rng)
    for child, p, q in zip(crossover(a, b, rng), a, b):
        assert len(set(child)) == 6 and set(child) <= set(p) | set(q)
    for child, parent in zip(mutate(a, K, rng), a):
        assert len(set(child)) == 6 and (child < K).all()
        assert len(set(child) - set(parent)) == 1  # exactly one member replaced by a non-member


@pytest.mark.parametrize("fitness", ["paper", "balanced", "auroc"])
def test_evolution_never_falls_below_its_first_generation(context, fitness):
    fit = FITNESS[fitness](context.score_matrix, context.val_labels)
    best, value, history = evolve(fit, K, 5, population=50, generations=30, rng=np.random.default_rng(3))
    assert np.all(np.diff(history) >= 0)
    assert value == history[-1] >= history[0]
    assert value == pytest.approx(fit(best[None, :])[0])


def test_evolution_is_deterministic_per_seed(context):
    fit = PaperFitness(context.score_matrix, context.val_labels)
    runs = [evolve(fit, K, 5, 40, 10, np.random.default_rng(s))[0].tolist() for s in (1, 1)]
    assert runs[0] == runs[1]


def test_gmm_is_label_free_and_picks_images_near_the_means(context):
    ctx = SelectionContext(
        candidates=context.candidates, pool_ids=context.pool_ids, pool_features=context.pool_features
    )  # no scores, no labels
    sel = make_selector("gmm").select(ctx, 3, np.random.default_rng(0))
    assert len(set(sel.ids)) == 3


def test_manual_rejects_ids_outside_the_training_set(context):
    context.manual_ids = [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="not training images"):
        make_selector("manual").select(context, 5, np.random.default_rng(0))


def test_typical_covers_the_typical_core_without_labels_and_skips_outliers(context):
    """Two tight clusters (sizes 30 and 10) and two far outliers: with M = 2 the prototypes are
    one image of each cluster, never an outlier."""
    from protolib.selection.typicality import cover

    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 6, [10.0] * 6])
    z = np.concatenate(
        [
            centres[0] + rng.normal(size=(30, 6)) * 0.1,
            centres[1] + rng.normal(size=(10, 6)) * 0.1,
            np.full((2, 6), 100.0) + rng.normal(size=(2, 6)),
        ]
    )
    ids = np.arange(500, 500 + len(z))
    ctx = SelectionContext(candidates=ids, pool_ids=ids, pool_features=z)  # no scores, no labels
    sel = make_selector("typical", {"typical": {"tail": 0.05, "metric": "sqeuclidean"}}).select(
        ctx, 2, np.random.default_rng(0)
    )
    assert 500 <= sel.ids[0] < 530 and 530 <= sel.ids[1] < 540 and sel.info["excluded"] == 2
    # facility location against its definition: each step the smallest summed distance to the nearest pick
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    chosen = cover(d, 3)
    brute = [min(range(len(z)), key=lambda j: np.minimum(d[chosen[:i] + [j]].min(0), np.inf).sum()) for i in range(3)]
    assert chosen == brute


def test_typical_for_many_m_equals_the_greedy_cover_by_definition(context):
    """One selector serves M = 1, 5, 10, 3 from one growing cover; each subset is the greedy
    facility-location cover of the typical rows for that M alone, computed here from its
    definition (a fresh loop per M), and the typical rows are all but the most atypical."""
    from protolib.selection.typicality import in_metric

    selector = make_selector("typical", {"typical": {"neighbours": 3, "tail": 0.1}})
    z = in_metric(context.pool_features, "cosine")
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    off = d + np.diag(np.full(len(z), np.inf))
    knn = np.sort(off, axis=1)[:, :3].mean(axis=1)
    for M in (1, 5, 10, 3):
        exclude = min(int(0.1 * len(z)), len(z) - M)
        rows = np.sort(np.argsort(-knn, kind="stable")[exclude:])
        chosen: list[int] = []
        for _ in range(M):  # the definition: each step the row that most lowers the summed cover
            costs = [
                np.inf if j in chosen else np.minimum.reduce([d[np.ix_(rows, rows)][c] for c in chosen + [j]]).sum()
                for j in range(len(rows))
            ]
            chosen.append(int(np.argmin(costs)))
        got = selector.select(context, M, np.random.default_rng(0))
        assert got.ids == [int(context.pool_ids[rows[j]]) for j in chosen], M


def test_config_runs_typical_and_balanced_fitness_and_names_a_bad_key(tmp_path):
    from protolib.config import ConfigError, validate
    from tests.helpers import small_config

    config = small_config(tmp_path)
    config["selection"]["methods"].append("typical")
    config["selection"]["typical"] = {"neighbours": 3, "metric": "sqeuclidean"}
    config["selection"]["evolutionary"]["fitness"] = "balanced"
    validate(config)
    assert make_selector("typical", config["selection"]).metric == "sqeuclidean"
    config["selection"]["typical"]["metric"] = "manhattan"
    with pytest.raises(ConfigError, match="selection.typical.metric"):
        validate(config)


def test_ablation_table_means_classes_then_seeds():
    import pandas as pd

    from protolib.ablation import ablation_table

    rows = [
        {"val": "literal", "method": "random", "M": 1, "seed": s, "class": c, "test_auroc": v}
        for s, c, v in [(0, 0, 0.5), (0, 1, 0.7), (1, 0, 0.7), (1, 1, 0.9)]
    ]
    rows.append({"val": "literal", "method": "greedy", "M": 1, "seed": 0, "class": 0, "test_auroc": 0.9})
    table = ablation_table(pd.DataFrame(rows))
    assert table.loc["literal val: random", "M = 1"] == "70.00 ± 10.00"
    assert table.loc["literal val: greedy", "M = 1"] == "90.00"
