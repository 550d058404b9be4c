"""Every key `cache_keys.py` composes stays the key of earlier runs: a finished study is read
back, never trained or evaluated anew, after a refactor. (Representation keys are pinned in
tests/test_method_registry.py, the data keys in tests/test_data_keys.py.)"""

from conftest import tiny_study
from ssl_robustness.cache_keys import (
    LIST_KEYS_SINCE,
    config_hash,
    evaluation_seed,
    image_cache_key,
    items_key,
)
from ssl_robustness.config import DataConfig, ListFilesConfig, validate_config
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.evaluation.run import evaluation_jobs, evaluation_specs
from ssl_robustness.representations import expand_representations

# one evaluation directory per built-in kind and adaptation set (the vit: row is a vision
# transformer's fine-tuning, whose AdamW settings join its key), as made before evaluations
# became registered kinds
EVALUATION_DIRS = {
    "finetune-imbalanced": "finetune-on-exp-r0.2-8a958857",
    "finetune-own": "finetune-on-exp-r0.2-8a958857",
    "knn-k5": "knn-k5-on-probe-balanced-b02a8784",
    "knn-k7": "knn-k7-on-probe-balanced-bd45f280",
    "linear-balanced": "linear-on-probe-balanced-c47dcafb",
    "linear-imbalanced": "linear-on-exp-r0.2-d83b74a1",
    "linear-own": "linear-on-exp-r0.2-d83b74a1",
    "linear-sgd": "linear-sgd-on-probe-balanced-4144f551",
    "vit:finetune-own": "finetune-on-exp-r0.2-98288394",
    "random-init:linear-own-balanced": "linear-on-balanced-621e33a6",
    "random-init:finetune-own-balanced": "finetune-on-balanced-9971506e",
}


def test_evaluation_directories_are_those_of_earlier_runs(tmp_path):
    raw = tiny_study(tmp_path)
    raw["evaluation"] = {
        "linear": {"train_on": ["balanced", "own", "imbalanced"], "l2_grid": [1e-3, 1e-4]},
        "knn": {"k": [5, 7]},
        "finetune": {"epochs": 1, "batch_size": 64, "train_on": ["own", "imbalanced"]},
        "linear_sgd": {"enabled": True, "epochs": 1},
    }
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    reps = {r.name: r for r in expand_representations(cfg, data)}
    found = {}
    for rep_name, tag, vit in (
        ("supervised_exp-r0.2_s0", "", False),
        ("supervised_exp-r0.2_s0", "vit:", True),
        ("random-init_none_s0", "random-init:", False),
    ):
        rep = reps[rep_name]
        specs = evaluation_specs(cfg.evaluation, rep.augmentation, vit=vit)
        for job in evaluation_jobs(specs, data, rep.seed, rep.subset):
            found[f"{tag}{job.label}"] = job.directory(rep.layout(cfg.layout).path, data).name
    assert {k: found[k] for k in EVALUATION_DIRS} == EVALUATION_DIRS


def test_small_keys_by_hand():
    """The hashes of the image cache, the item sets and the evaluation seed, as pinned values
    of small inputs (a change of canonical JSON or of the hash would move every cache)."""
    assert config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1})
    assert items_key(["x.png", "y.png"], [0, 1]) == config_hash(
        {"items": ["x.png", "y.png"], "labels": [0, 1]}
    )
    assert items_key(["x.png", "y.png"], [0, 1]) == "0288e77e89"
    assert image_cache_key(DataConfig(), ["x.png"]) == "7dd21b5113"
    assert evaluation_seed("rep-1", "linear-on-probe-balanced-1", 0) == 2_176_724_567


def test_list_keys_added_later_are_left_out_at_the_values_that_behave_as_before():
    defaults = {
        k: ListFilesConfig.model_fields[k].get_default(call_default_factory=True)
        for k in LIST_KEYS_SINCE
    }
    assert defaults == LIST_KEYS_SINCE


def test_a_split_cap_enters_the_keys_only_when_set():
    """`data.split.max_per_group` came after runs were keyed by the split section: unset, the
    section dumps as before it existed (every finished run stays found); set, it is keyed."""
    from ssl_robustness.cache_keys import data_settings

    plain = data_settings(DataConfig())
    assert "max_per_group" not in plain["split"]
    capped = data_settings(DataConfig(split={"max_per_group": 2}))
    assert capped["split"]["max_per_group"] == 2 and capped != plain
