import pytest

from echo_rl.errors import UserError
from echo_rl.train.sampler import TaskSampler


def test_sampler_covers_each_epoch_without_replacement_and_resumes_exactly():
    sampler = TaskSampler(5, seed=1)
    first = sampler.next(3)
    state = sampler.state()
    rest = sampler.next(7)
    assert sorted(first + rest[:2]) == list(range(5))
    resumed = TaskSampler(5, seed=1)
    resumed.load_state(state)
    assert resumed.next(7) == rest


def test_sampler_refuses_state_of_another_task_set():
    state = TaskSampler(5, seed=1).state()
    with pytest.raises(UserError):
        TaskSampler(6, seed=1).load_state(state)
