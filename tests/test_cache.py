"""Cache directories keyed by content: built once, reused, an interrupted build started again."""

from echo_rl.cache import cached_pickle, fingerprint


def test_a_cache_is_built_once_then_read_back_and_an_unfinished_one_is_rebuilt(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return [("task", [1, 2], None)], {"seconds": 1.5}

    first = cached_pickle(tmp_path / "c", build)
    again = cached_pickle(tmp_path / "c", build)
    assert first == ([("task", [1, 2], None)], {"seconds": 1.5}, False)
    assert again == ([("task", [1, 2], None)], {"seconds": 1.5}, True) and len(builds) == 1
    (tmp_path / "c" / "DONE").unlink()  # as if the build had been interrupted before its end
    (tmp_path / "c" / "stray").write_text("half-written")
    assert cached_pickle(tmp_path / "c", build)[2] is False and len(builds) == 2
    assert not (tmp_path / "c" / "stray").exists()


def test_fingerprint_is_stable_and_order_of_keys_does_not_matter():
    assert fingerprint({"a": 1, "b": [2]}, "v1") == fingerprint({"b": [2], "a": 1}, "v1")
    assert fingerprint({"a": 1}, "v1") != fingerprint({"a": 2}, "v1")
    assert fingerprint("x") == "cd65ea2c2ad9"  # a cache key must not change between releases
