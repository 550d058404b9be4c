"""What a newcomer met (issue 22): a misspelt --set key suggests the right one, a comma list
hints at brackets, a non-checkpoint file is named as such, and a failed download of published
weights leaves nothing in the cache, not even its lock file."""

import threading

import pytest
from click.testing import CliRunner

from ssl_robustness.cli import cli
from ssl_robustness.errors import UserError
from ssl_robustness.models import hub
from ssl_robustness.models.checkpoints import read_checkpoint


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("pretrain.epoch=5", "pretrain.epoch: unknown key; did you mean 'epochs'?"),
        ("data.imbalance.ration=0.1", "data.imbalance.ration: unknown key; did you mean 'ratio'?"),
        ("methods=[{name: simclr, temperatur: 0.2}]", "did you mean 'temperature'?"),
        ("seeds=0,1", "seeds: Input should be a valid list; a list is written in brackets: [0,1]"),
    ],
)
def test_set_suggests_what_was_meant(tmp_path, override, said):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", "--plan", "--set", f"output_dir={out}", "--set", override]
    )
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert not out.exists()  # refused before any work


def test_an_unknown_key_far_from_every_key_gets_no_guess(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--plan", "--set", "pretrain.zzz=1"])
    assert result.exit_code == 2 and "pretrain.zzz: unknown key\n" in result.output


def test_inspect_on_a_config_file_says_not_a_checkpoint_file(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("name: quickstart\nseeds: [0, 1]\n")
    result = CliRunner().invoke(cli, ["checkpoint", "inspect", str(config)])
    assert result.exit_code == 2
    assert "config.yaml: cannot read checkpoint" in result.output
    assert "not a checkpoint file" in result.output
    assert "Check the documentation of torch.load" not in result.output
    with pytest.raises(UserError, match=r"this file begins b'name: quickstart"):
        read_checkpoint(config)


def test_a_failed_download_leaves_no_lock_file(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(hub.CACHE_ENV, str(cache))
    missing = tmp_path / "gone.pth"
    monkeypatch.setitem(
        hub.REGISTRY, "gone", hub.Published(missing.as_uri(), "moco", None, None, "a test")
    )
    with pytest.raises(UserError, match=r"weights 'gone': cannot download"):
        hub.fetch("gone")
    assert list(cache.iterdir()) == []


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one(tmp_path):
    target = tmp_path / "w.pth"
    lock = tmp_path / "w.pth.lock"
    seen = []

    def second():
        with hub._lock(target):
            seen.append(lock.exists())

    with hub._lock(target):
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # it waits while the first holds the lock
    waiter.join(10)
    # the first removed its file on release; the waiter re-opened and locked a new one
    assert seen == [True] and not lock.exists()
