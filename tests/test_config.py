"""Config validation: every error names the file, the key path and what is allowed."""

from pathlib import Path

import pytest
import yaml

from repbench import config, space
from repbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "name": "t",
    "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 300},
    "splits": {"test": 50, "train_sizes": [20, 40], "draws": 2},
    "representation": {"soap": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5}},
    "kernel": {"atom_kernel": "gaussian"},
}


def _write(tmp_path, data, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def _err(tmp_path, data) -> str:
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        config.load(p)
    msg = e.value.format()
    assert str(p) in msg, msg
    return msg


def _with(path: str, value):
    import copy

    d = copy.deepcopy(BASE)
    *head, last = path.split(".")
    cur = d
    for h in head:
        cur = cur.setdefault(h, {})
    cur[last] = value
    return d


def test_all_shipped_configs_validate():
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert files, "no configs found"
    for f in files:
        c = config.load(f)
        assert c.name


def test_valid_config_is_frozen_and_hashable(tmp_path):
    c = config.load(_write(tmp_path, BASE))
    with pytest.raises(TypeError):
        c.dataset["target"] = "x"
    assert c.hash() == config.load(_write(tmp_path, BASE, "d.yaml")).hash()
    assert c.hash() != config.from_dict(_with("seed", 3)).hash()


@pytest.mark.parametrize("path,value,expect", [
    ("dataset.colour", "red", "dataset.colour: unknown key"),
    ("splits.draws", "three", "splits.draws: wrong type"),
    ("splits.draws", 0, "splits.draws: 0 is out of range"),
    ("dataset.per", "molecule", "dataset.per: 'molecule' is not allowed"),
    ("dataset.name", "qm7", "allowed: qm9"),
    ("splits.train_sizes", [40, 20], "strictly increasing"),
    ("representation.soap.n_max", 0, "representation.soap.n_max"),
    ("representation.soap.l_max", 42, "representation.soap.l_max"),
    ("representation.soap.bogus", 1, "representation.soap.bogus"),
    ("representation.soap.n_max", {"int": [5, 2]}, "malformed search-space leaf"),
    ("representation.soap.l_max", {"int": [2, 50]}, "representation.soap.l_max"),
    ("representation.soap.sigma", {"loguniform": [0, 1]}, "must be > 0"),
    ("kernel.atom_kernel", "cosine", "kernel.atom_kernel"),
    ("krr.baseline", "linear", "krr.baseline"),
    ("tune.trials", -1, "tune.trials"),
])
def test_bad_values_name_the_key(tmp_path, path, value, expect):
    msg = _err(tmp_path, _with(path, value))
    assert expect in msg, msg


def test_missing_required_and_unknown_section(tmp_path):
    d = dict(BASE)
    d.pop("representation")
    assert "representation: is required" in _err(tmp_path, d)
    assert "unknown key" in _err(tmp_path, {**BASE, "tuning": {}})


def test_malformed_yaml_names_the_line(tmp_path):
    msg = _err(tmp_path, "name: x\ndataset: {name: qm9\n  target: U0\n")
    assert "c.yaml:" in msg and "malformed YAML" in msg


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    assert "empty" in _err(tmp_path, "")


def test_path_required_for_file_datasets(tmp_path):
    msg = _err(tmp_path, _with("dataset.name", "nmd18"))
    assert "dataset.path: is required" in msg


def test_search_space_leaves():
    d = {"a": {"loggrid": [-2, 0, 3]}, "b": [1, {"choice": [[1, 2], [3]]}], "c": 4}
    leaves = space.find_leaves(d)
    assert [p for p, _ in leaves] == ["a", "b[1]"]
    assert space.leaf_options(leaves[0][1]) == [0.25, 0.5, 1.0]
    inst = space.substitute(d, {"a": 0.5, "b[1]": [3]})
    assert inst == {"a": 0.5, "b": [1, [3]], "c": 4}
    assert len(list(space.extremes(d))) == 1 + 2 + 1


def test_search_space_sampling_is_seeded():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = {"x": {"loguniform": [0.1, 10]}, "n": {"int": [1, 8]}, "k": {"choice": [[2], [2, 3]]},
          "g": {"loggrid": [-3, 3, 7, 2]}}

    def seq(seed):
        st = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        out = []
        for _ in range(5):
            t = st.ask()
            v = space.suggest(t, sp)
            out.append(v)
            st.tell(t, 0.0)
        return out

    a, b = seq(1), seq(1)
    assert a == b
    for v in a:
        assert 0.1 <= v["x"] <= 10 and 1 <= v["n"] <= 8 and v["k"] in ([2], [2, 3])
        assert v["g"] in [2.0 ** e for e in range(-3, 4)]
