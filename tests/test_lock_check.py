import copy

from pytorch_workflow.lock_check import stage_changes, stale_report

LOCK = {
    "schema": "2.0",
    "stages": {
        "train": {
            "cmd": "python -m stages.train",
            "deps": [{"path": "stages/train.py", "md5": "aaa", "size": 10}],
            "params": {"params.yaml": {"seed": 42, "train": {"epochs": 100, "lr": 0.01}}},
            "outs": [
                {"path": "models/model.pt", "md5": "bbb", "size": 20},
                {"path": "metrics/train.json", "md5": "ccc", "size": 30},
            ],
        },
        "export": {
            "cmd": "python -m stages.export",
            "deps": [{"path": "models/model.pt", "md5": "bbb", "size": 20}],
            "outs": [{"path": "models/export", "md5": "ddd.dir", "size": 40, "nfiles": 3}],
        },
    },
}


def test_an_unchanged_lock_and_tree_are_not_stale():
    assert stale_report(LOCK, copy.deepcopy(LOCK), []) == {}


def test_a_changed_param_names_the_stage_the_param_and_both_values():
    rerun = copy.deepcopy(LOCK)
    rerun["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] = 300
    rerun["stages"]["train"]["outs"][0]["md5"] = "new"

    assert stage_changes(LOCK, rerun) == {
        "train": ["params.yaml train.epochs: 100 -> 300", "outs changed: models/model.pt"]
    }


def test_changed_files_are_put_under_the_stage_that_writes_them():
    report = stale_report(
        LOCK, copy.deepcopy(LOCK), ["metrics/train.json", "models/export/model_card.json", "x.txt"]
    )

    assert report == {
        "train": ["differs from the commit: metrics/train.json"],
        "export": ["differs from the commit: models/export/model_card.json"],
        "(no stage)": ["differs from the commit: x.txt"],
    }


def test_a_stage_missing_from_the_committed_lock_is_stale():
    committed = copy.deepcopy(LOCK)
    del committed["stages"]["export"]

    assert stage_changes(committed, LOCK) == {"export": ["not in the committed dvc.lock"]}
