"""CPU threads of the encoders: one per process unless ENCODER_CPU_THREADS says otherwise."""

import pytest
import torch

from mlmodels.device import configure_cpu_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_encoders_default_to_one_cpu_thread(monkeypatch, restore_threads):
    monkeypatch.delenv("ENCODER_CPU_THREADS", raising=False)

    assert configure_cpu_threads() == 1
    assert torch.get_num_threads() == 1


def test_cpu_threads_come_from_the_environment(monkeypatch, restore_threads):
    monkeypatch.setenv("ENCODER_CPU_THREADS", "2")

    assert configure_cpu_threads() == 2
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("raw", ["0", "-1", "many"])
def test_bad_thread_count_is_refused_with_the_variable_named(monkeypatch, raw, restore_threads):
    monkeypatch.setenv("ENCODER_CPU_THREADS", raw)

    with pytest.raises(ValueError, match="ENCODER_CPU_THREADS must be a positive integer"):
        configure_cpu_threads()
