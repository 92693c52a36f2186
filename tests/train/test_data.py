"""The task splits a run resolves: a test split only when asked for, disjoint from the selection split."""

from echo_rl.config import RunConfig
from echo_rl.train.data import load_task_splits

TASKS = {"families": ["key_copy", "log_count"], "num_train": 6, "num_validation": 4, "num_heldout": 2}


def test_the_test_split_is_empty_by_default_and_disjoint_from_validation_when_configured():
    plain = load_task_splits(RunConfig(tasks=TASKS), ["train", "validation", "test"])
    assert plain["test"] == [] and len(plain["validation"]) == 4
    splits = load_task_splits(RunConfig(tasks=TASKS | {"num_test": 4}, eval={"splits": ["test", "heldout"]}),
                              ["train", "validation", "test", "heldout"])
    names = {split: {t.name for t in tasks} for split, tasks in splits.items()}
    assert len(names["test"]) == 4 and not names["test"] & (names["validation"] | names["train"])
    assert names["validation"] == {t.name for t in plain["validation"]}
