"""Hostile and unlucky input (issue 15), the input side: what the corpus in ``tests/bad_inputs/`` cannot
hold as a static file or a command line.

* class 1, silent acceptance: duplicate YAML keys, values a search space reaches, KRR bounds, seeds, run
  names, two atoms at one position, periodic and non-periodic structures mixed;
* class 2, a correctness hole: moving atoms of crystals by lattice vectors leaves ``repbench run``'s
  learning curve unchanged;
* class 3, resource blow-ups: FIFOs and devices given to every reader and to the config loader (refused
  before anything is read, never a hang), files beyond the size limit, absurd atom counts, alias bombs,
  atoms far outside their cell, degenerate cells, HDF5 files that declare more than they hold;
* class 6 (HDF5 and documents): external storage, external and soft links, virtual datasets and foreign
  filters in data.h5, cache entries and the QM9 cache; damaged values in best.yaml, curve points,
  curve.yaml and timings.yaml.

A hang is caught by :func:`no_hang` (the call runs in a thread; a FIFO that blocks it is then opened for
writing and closed, so that the thread ends).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from repbench.config import ConfigError, from_dict, load
from repbench.datasets import load_dataset
from repbench.errors import DataError, RepbenchError, RunDirError

GOOD = yaml.safe_load((Path(__file__).parent / "bad_inputs" / "good.yaml").read_text())
SOAP = {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}}
BASE = {"name": "t", "dataset": {"name": "qm9", "target": "U0_atomization", "subset": 60},
        "splits": {"test": 20, "train_sizes": [10, 20], "draws": 1}, "representation": SOAP}


def cfg(**sections) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    d.update(sections)
    return d


def no_hang(fn, timeout: float = 20.0, fifos: tuple = ()):
    """Call ``fn`` in a thread; fail the test if it does not return within ``timeout`` seconds.  Returns
    what it returned, or the exception it raised."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        for f in fifos:  # unblock a reader stuck in open(): a writer appears and goes away
            try:
                os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail(f"hung for {timeout} s")
    return box.get("error", box.get("value"))


def expect_error(result, cls, *needles: str) -> str:
    assert isinstance(result, cls), f"expected {cls.__name__}, got {result!r}"
    msg = result.format()
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert "\n" not in msg
    return msg


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ====================================================================== class 3: files that are not files
def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


READER_FIFOS = {
    # name: (dataset, path of the FIFO relative to tmp, path given to the reader, options)
    "file-extxyz": ("file", "d.extxyz", "d.extxyz", {"target_key": "energy"}),
    "file-other-format": ("file", "OUTCAR", "OUTCAR", {"target_key": "energy", "format": "vasp-out"}),
    "ba10": ("ba10", "ba10.xyz", "ba10.xyz", {}),
    "qm9-raw-file": ("qm9-raw", "q.xyz", "q.xyz", {}),
    "qm9-raw-archive": ("qm9-raw", "dsgdb9nsd.xyz.tar.bz2", "dsgdb9nsd.xyz.tar.bz2", {}),
    "qm9-raw-folder": ("qm9-raw", "raw/dsgdb9nsd_000001.xyz", "raw", {}),
    "qm9-csv-folder": ("qm9", "csv/qm9_part1.csv", "csv", {"cache_dir": "cache"}),
    "nmd18-train-csv": ("nmd18", "nmd/train.csv", "nmd", {}),
}


@pytest.mark.parametrize("case", sorted(READER_FIFOS))
def test_every_reader_refuses_a_fifo(case, tmp_path):
    """A FIFO given as (or inside) a data path is refused at once, naming it; nothing blocks on it."""
    dataset, fifo, given, options = READER_FIFOS[case]
    f = _fifo(tmp_path / fifo)
    options = {k: (str(tmp_path / v) if k == "cache_dir" else v) for k, v in options.items()}
    res = no_hang(lambda: load_dataset(dataset, tmp_path / given, **options), fifos=(f,))
    expect_error(res, DataError, "a FIFO (named pipe), not a regular file", str(f))


def test_nmd18_geometry_fifo_is_not_read(tmp_path):
    d = tmp_path / "nmd"
    write(d / "train.csv", "id,number_of_total_atoms,percent_atom_al,percent_atom_ga,percent_atom_in,"
                           "formation_energy_ev_natom,bandgap_energy_ev\n1,10,1.0,0.0,0.0,0.1,3.0\n")
    f = _fifo(d / "train" / "1" / "geometry.xyz")
    res = no_hang(lambda: load_dataset("nmd18", d), fifos=(f,))
    expect_error(res, DataError, "a FIFO (named pipe), not a regular file", str(f))


def test_config_loader_refuses_a_fifo_and_devices(tmp_path):
    f = _fifo(tmp_path / "c.yaml")
    expect_error(no_hang(lambda: load(f), fifos=(f,)), ConfigError, "a FIFO (named pipe), not a regular file",
                 str(f))
    expect_error(no_hang(lambda: load("/dev/zero")), ConfigError, "a character device", "/dev/zero")
    expect_error(no_hang(lambda: load(tmp_path)), ConfigError, "a folder, not a regular file")


def test_files_beyond_the_size_limit_are_refused_unread(tmp_path):
    """A sparse file of 3 GiB (no disk used): refused from its size, before a byte is read."""
    from repbench.datasets import MAX_DATA_BYTES, read_text

    big = tmp_path / "big.extxyz"
    with open(big, "wb") as fh:
        fh.truncate(MAX_DATA_BYTES + 2**30)
    t0 = time.perf_counter()
    expect_error(no_hang(lambda: load_dataset("file", big, target_key="energy")), DataError,
                 "holds 3.0 GiB, more than the 2.0 GiB repbench reads", str(big))
    expect_error(no_hang(lambda: load_dataset("ba10", big)), DataError, "more than the 2.0 GiB")
    expect_error(no_hang(lambda: read_text(big, "file")), DataError, "more than the 2.0 GiB")
    assert time.perf_counter() - t0 < 5
    cfg_file = tmp_path / "c.yaml"
    with open(cfg_file, "wb") as fh:
        fh.write(b"name: x\n# " + b"x" * 2**20 + b"\n")
    expect_error(no_hang(lambda: load(cfg_file)), ConfigError,
                 "holds 1048587 bytes, more than the 1048576 bytes", str(cfg_file))


@pytest.mark.parametrize("dataset", ["file", "ba10", "qm9-raw"])
def test_absurd_atom_count_is_bounded_by_the_file(dataset, tmp_path):
    """An atom count of 10**12 in a header fails at once (ASE looped over it: a hang)."""
    lines = {"file": ['Properties=species:S:1:pos:R:3 energy=-1.0 pbc="F F F"', "H 0 0 0", "H 0 0 0.74"],
             "ba10": ['Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 total_energy_eV=-1 '
                      'formation_enthalpy_eV=0 pbc="T T T" name=X-1', "Cu 0 0 0", "Cu 1.5 1.5 0"],
             "qm9-raw": ["gdb 1\t" + "\t".join(["1.0"] * 15), "H\t0.0\t0.0\t0.0\t0.0",
                         "H\t0.0\t0.0\t0.74\t0.0", "1.0", "H H", "InChI=1S/H2"]}[dataset]
    p = write(tmp_path / "d.xyz", "\n".join(["1000000000000"] + lines) + "\n")
    t0 = time.perf_counter()
    res = no_hang(lambda: load_dataset(dataset, p, **({"target_key": "energy"} if dataset == "file" else {})))
    expect_error(res, DataError, str(p))
    assert time.perf_counter() - t0 < 5


# ====================================================================== class 3: error lengths, alias bombs
def test_every_error_message_is_bounded():
    from repbench.errors import MAX_HINT, MAX_MESSAGE, MAX_WHERE

    e = ConfigError("m" * 10**7 + "\nsecond line\x1b[31m", where="w" * 10**6, hint="h" * 10**6)
    msg = e.format()
    assert len(msg) <= MAX_MESSAGE + MAX_WHERE + MAX_HINT + 10 and "\n" not in msg and "\x1b" not in msg
    # a huge value in a config is quoted short
    huge = {"name": "x" * 100, "dataset": {"name": "qm9", "target": "U0_atomization"},
            "representation": {"soap": {"r_cut": list(range(10**5))}}}
    with pytest.raises(ConfigError) as info:
        from_dict(huge)
    assert len(info.value.format()) < 1000


def test_alias_bomb_is_refused_before_it_is_built(tmp_path):
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        text += f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    for where in ("name: *i\n", "representation: {soap: {r_cut: *i}}\n", "colour: *i\n"):
        p = write(tmp_path / "bomb.yaml", text + where)
        t0 = time.perf_counter()
        res = no_hang(lambda: load(p))
        msg = expect_error(res, ConfigError, "YAML aliases expand to more than 100000 values", str(p))
        assert len(msg) < 600 and time.perf_counter() - t0 < 5


# =========================================================================== class 1: the config loader
def test_duplicate_keys_are_refused_at_any_depth(tmp_path):
    p = write(tmp_path / "c.yaml", "dataset: {name: qm9, target: U0_atomization}\n"
                                   "representation: {soap: {r_cut: 3.0, n_max: 2, n_max: 3}}\n")
    expect_error(no_hang(lambda: load(p)), ConfigError, "representation.soap.n_max: duplicate key", f"{p}:2")
    p = write(tmp_path / "c.yaml", "dataset: {name: qm9, target: U0_atomization}\nsplits:\n"
                                   "  train_sizes: [10, 20]\n  draws: 2\n  draws: 3\n" + "representation: "
                                   "{soap: {r_cut: 3.0, n_max: 2, l_max: 1, sigma: 0.5}}\n")
    expect_error(no_hang(lambda: load(p)), ConfigError,
                 "splits.draws: duplicate key (given on line 4 and again on line 5)",
                 f"{p}:5")


def test_merge_keys_and_aliases_still_work(tmp_path):
    """``<<: *anchor`` with an override is not a duplicate; a shared anchor is not a bomb."""
    p = write(tmp_path / "c.yaml", "x-soap: &s {r_cut: 3.0, n_max: 2, l_max: 1, sigma: 0.5}\n"
                                   "dataset: {name: qm9, target: U0_atomization, subset: 60}\n"
                                   "splits: {test: 20, train_sizes: [10, 20], draws: 1}\n"
                                   "representation: {soap: {<<: *s, n_max: 3}}\n")
    from repbench.config import parse_yaml

    doc = parse_yaml(p.read_text(), str(p))
    assert doc["representation"]["soap"] == {"r_cut": 3.0, "n_max": 3, "l_max": 1, "sigma": 0.5}


def test_seed_is_bounded_by_what_the_sampler_takes():
    assert from_dict(cfg(seed=2**32 - 1)).seed == 2**32 - 1
    with pytest.raises(ConfigError, match=r"seed: 4294967296 is out of range"):
        from_dict(cfg(seed=2**32))


@pytest.mark.parametrize("name,needle", [
    ("run\nname", "control character"), ("run\x1b[31m", "control character"),
    ("abc\u202edef", "control character"), ("a" * 129, "129 bytes long"), ("\u00e9" * 65, "130 bytes long"),
])
def test_run_names_must_name_a_folder(name, needle):
    with pytest.raises(ConfigError) as info:
        from_dict(cfg(name=name))
    msg = info.value.format()
    assert msg.startswith("<config>: name: ") and needle in msg and "\n" not in msg


def test_ordinary_run_names_still_pass():
    for name in ("soap-qm9_1.5", "M\u00fcller run", "a" * 128, "\u00e9" * 64):
        assert from_dict(cfg(name=name)).name == name


@pytest.mark.parametrize("krr,needle", [
    ({"ls_bounds": [float("nan"), 3]}, "krr.ls_bounds: must be [low, high] finite"),
    ({"ls_bounds": [-3, float("inf")]}, "krr.ls_bounds: must be [low, high] finite"),
    ({"ls_bounds": [-1000, 1000]}, "krr.ls_bounds: [-1000, 1000] is out of range"),
    ({"ls_bounds": [0.1, 0.6]}, "krr.ls_bounds: [0.1, 0.6] spans less than one grid step"),
    ({"reg_bounds": [-400, 0]}, "krr.reg_bounds: [-400, 0] is out of range"),
    ({"reg_bounds": [0.2, 0.8], "reg_start": 0}, "krr.reg_bounds: [0.2, 0.8] holds no point"),
    ({"reg_start": 5000}, "krr.reg_start: 5000.0 is out of range"),
    ({"reg_start": float("nan")}, "krr.reg_start: must be finite"),
    ({"length_scale": 1e-300}, "krr.length_scale: 1e-300 is out of range"),
    ({"regularization": 1e300}, "krr.regularization: 1e+300 is out of range"),
])
def test_krr_values_that_crashed_curve_are_refused(krr, needle):
    with pytest.raises(ConfigError) as info:
        from_dict(cfg(krr=krr))
    assert needle in info.value.format()


def test_krr_defaults_and_ordinary_values_pass():
    c = from_dict(cfg(krr={"ls_bounds": [-30, 30], "reg_bounds": [-60, 5], "reg_start": -30.5,
                           "length_scale": 1e-3, "regularization": 1e-12}))
    assert c.krr["reg_start"] == -30.5
    from_dict(cfg(krr={"reg_bounds": [0.2, 0.8], "reg_start": 0.5}))  # 0.5 is on the grid


@pytest.mark.parametrize("section,value,needle", [
    ("representation", {"soap": {"r_cut": 3.0, "n_max": {"uniform": [2, 4]}, "l_max": 1, "sigma": 0.5}},
     "representation.soap.n_max: expected an integer"),
    ("representation", {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": {"loguniform": [1, 4]}, "sigma": 0.5}},
     "representation.soap.l_max: expected an integer"),
    ("kernel", {"atom_kernel": "polynomial", "zeta": {"uniform": [-1, 3]}},
     "kernel.zeta: -1.0 is out of range"),
    ("kernel", {"atom_kernel": {"choice": ["gaussian", "cosine"]}},
     "kernel.atom_kernel: 'cosine' is not allowed"),
    ("kernel", {"normalize": {"choice": [True, "yes"]}}, "kernel.normalize: wrong type"),
    ("kernel", {"zeta": {"loggrid": [0, 2000, 3]}}, "kernel.zeta: must be finite"),
])
def test_every_value_a_leaf_reaches_is_validated(section, value, needle):
    with pytest.raises(ConfigError) as info:
        from_dict(cfg(**{section: value}))
    msg = info.value.format()
    assert needle in msg and ("reaches" in msg), msg


def test_leaves_where_nothing_is_searched_are_refused():
    """`tune` searches the representation and kernel sections only: a leaf elsewhere is an error, not a
    dict handed to the model."""
    with pytest.raises(ConfigError, match=r"regressor.krr.alpha: a search-space leaf"):
        from_dict(cfg(regressor={"krr": {"alpha": {"uniform": [0.1, 1.0]}}}))
    with pytest.raises(ConfigError, match=r"krr.length_scale: wrong type"):
        from_dict(cfg(krr={"length_scale": {"loguniform": [0.1, 10.0]}}))


def test_leaf_combinations_are_validated_when_a_config_is_read(tmp_path):
    """r_cut 1.5 and n_max 10 are each valid; together dscribe cannot build the basis.  The base value of
    r_cut is 6.0, so probing each leaf alone (as before) never tried the pair."""
    p = write(tmp_path / "c.yaml", yaml.safe_dump(cfg(representation={"soap": {
        "r_cut": {"choice": [6.0, 1.5]}, "n_max": {"int": [2, 10]}, "l_max": 1, "sigma": 0.5}})))
    with pytest.raises(ConfigError) as info:
        load(p)
    msg = info.value.format()
    assert "rejected by dscribe" in msg and "r_cut = 1.5" in msg and "n_max = 10" in msg


def test_a_config_that_loads_never_yields_an_invalid_trial(tmp_path):
    """Sample 40 points of each search space as `tune` does: every one validates."""
    import optuna

    from repbench import space
    from repbench.representations import REPRESENTATIONS
    from repbench.tuning import search_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spaces = [
        {"soap": {"r_cut": {"uniform": [2.0, 6.0]}, "n_max": {"int": [2, 8]}, "l_max": {"int": [1, 6]},
                  "sigma": {"loggrid": [-4, 1, 11]}}},
        {"mbtr": {"k": [2], "k2": {"geometry": "inverse_distance",
                                   "grid": {"min": 0.0, "max": 0.7, "n": {"choice": [20, 50]},
                                            "sigma": {"loguniform": [0.001, 0.1]}}}}},
    ]
    for rep in spaces:
        p = write(tmp_path / "c.yaml", yaml.safe_dump(cfg(representation=rep)))
        c = load(p)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        kind = c.rep_kind
        for _ in range(40):
            params = space.suggest(study.ask(), search_space(c))
            REPRESENTATIONS.get_component(kind).validate(params["representation"][kind], "x")


# =========================================================================== class 1: structures
def _molecules(n: int, extra: str = "") -> str:
    out = []
    for k in range(n):
        out += ["3", f'Properties=species:S:1:pos:R:3 energy={-14.0 - 0.01 * k} pbc="F F F"', "O 0.0 0.0 0.0",
                f"H 0.76 0.59 {0.001 * k}", "H -0.76 0.59 0.0"]
    return "\n".join(out) + "\n" + extra


def test_two_atoms_at_one_position_are_refused(tmp_path):
    """Before: accepted silently (the Coulomb matrix divides by their distance)."""
    dup = ('4\nProperties=species:S:1:pos:R:3 energy=-15.0 pbc="F F F"\nO 0 0 0\nH 0.76 0.59 0\n'
           'H -0.76 0.59 0\nH 0.76 0.59 0.00001\n')
    p = write(tmp_path / "m.extxyz", _molecules(50, dup))
    res = no_hang(lambda: load_dataset("file", p, target_key="energy"))
    expect_error(res, DataError, "atoms 1 and 3 of structure '50' are at the same position",
                 f"{p}, structure 50")


def test_an_atom_on_its_own_periodic_image_is_refused(tmp_path):
    from ase.build import bulk

    import ase.io

    crystals = []
    for k in range(20):
        a = bulk("Cu", "fcc", a=3.6 + 0.01 * k, cubic=True)
        a.info["energy"] = -1.0 * k
        crystals.append(a)
    crystals[7].positions[2] = crystals[7].positions[0] + crystals[7].cell[1] - 2 * crystals[7].cell[2]
    p = tmp_path / "c.extxyz"
    ase.io.write(p, crystals, format="extxyz")
    expect_error(no_hang(lambda: load_dataset("file", p, target_key="energy")), DataError,
                 "atoms 0 and 2 of structure '7' are at the same position (or periodic images of it)")


def test_periodic_and_molecular_structures_are_not_mixed(tmp_path):
    crystal = ('1\nLattice="3.6 0 0 0 3.6 0 0 0 3.6" Properties=species:S:1:pos:R:3 energy=-3.7 pbc="T T T"\n'
               'Cu 0 0 0\n')
    p = write(tmp_path / "m.extxyz", _molecules(30, crystal))
    expect_error(no_hang(lambda: load_dataset("file", p, target_key="energy")), DataError,
                 "structure '30' (index 30) is periodic, structure '0' (index 0) is not", str(p))


def test_degenerate_and_absurd_geometries_are_refused(tmp_path):
    from repbench.structures import MAX_COORDINATE

    flat = ('1\nLattice="3 0 0 0 3 0 3 3 0.00001" Properties=species:S:1:pos:R:3 energy=-1 pbc="T T T"\n'
            'Cu 0 0 0\n')
    p = write(tmp_path / "flat.extxyz", flat * 3)
    expect_error(no_hang(lambda: load_dataset("file", p, target_key="energy")), DataError,
                 "nearly flat periodic cell", f"{p}, structure 0")
    far = _molecules(5).replace("H -0.76 0.59 0.0", f"H -0.76 0.59 {MAX_COORDINATE * 10}", 1)
    p = write(tmp_path / "far.extxyz", far)
    expect_error(no_hang(lambda: load_dataset("file", p, target_key="energy")), DataError, "beyond the 1e+08",
                 f"{p}, structure 0")
    big_cell = ('1\nLattice="1e9 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 energy=-1 pbc="T T T"\n'
                'Cu 0 0 0\n')
    p = write(tmp_path / "big.extxyz", big_cell)
    expect_error(no_hang(lambda: load_dataset("file", p, target_key="energy")), DataError,
                 "cell vector longer than 1e+08")


def test_geometry_check_keeps_real_data_and_is_fast():
    from repbench.structures import check_geometry

    s = load_dataset("qm9")
    t0 = time.perf_counter()
    check_geometry(s)
    assert time.perf_counter() - t0 < 5


# =========================================================================== classes 2 and 3: periodic images
def _crystals(n: int, seed: int):
    """Cu/Au fcc crystals (EMT energies) in a cell of exactly representable lengths, positions on a grid
    of 2^-8 (exact in binary and in the 8 decimals extxyz writes): moving an atom by lattice vectors and
    wrapping it back is then exact, so the two learning curves agree to the last bit (a missing or wrong
    wrap changes them at the percent level)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.625, cubic=True).repeat((1, 1, 2))
        a.numbers[rng.random(len(a)) < 0.4] = 79  # Au
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        a.positions = np.round(a.positions * 256) / 256  # exact in binary and in extxyz's 8 decimals
        a.calc = EMT()
        e = a.get_potential_energy()
        a.calc = None
        a.info["energy"] = e
        a.info["name"] = f"c{k}"
        out.append(a)
    return out


def _moved_by_lattice_vectors(atoms_list, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for a in atoms_list:
        b = a.copy()
        b.info = dict(a.info)
        for i in rng.choice(len(b), size=3, replace=False):
            shift = rng.integers(-3, 4, size=3)
            shift[0] = shift[0] or 2
            b.positions[i] += shift @ np.asarray(b.cell)
        out.append(b)
    return out


def test_moving_atoms_by_lattice_vectors_leaves_the_learning_curve_unchanged(tmp_path):
    """`repbench run` on crystals and on a copy with atoms moved by whole lattice vectors: the same
    curve.yaml (every metric of every draw, to 1e-9)."""
    import ase.io
    from click.testing import CliRunner

    from repbench.cli import main

    crystals = _crystals(24, seed=3)
    moved = _moved_by_lattice_vectors(crystals, seed=4)
    assert any(np.abs(a.positions - b.positions).max() > 3 for a, b in zip(crystals, moved))
    curves = []
    for name, structs in (("orig", crystals), ("moved", moved)):
        data = tmp_path / f"{name}.extxyz"
        ase.io.write(data, structs, format="extxyz")
        conf = write(tmp_path / f"{name}.yaml", yaml.safe_dump({
            "name": name, "dataset": {"name": "file", "path": str(data), "target": "energy"},
            "splits": {"test": 8, "train_sizes": [6, 12], "draws": 2, "inner_folds": 2},
            "representation": {"soap": {"r_cut": 3.5, "n_max": 2, "l_max": 1, "sigma": 0.5}},
            "time": {"repeats": 1, "n_structures": 4}}))
        res = CliRunner().invoke(main, ["run", str(conf), "--run-dir", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        curves.append(yaml.safe_load((tmp_path / name / "curve.yaml").read_text()))
    a, b = curves
    assert [s["size"] for s in a["sizes"]] == [s["size"] for s in b["sizes"]] == [6, 12]
    for sa, sb in zip(a["sizes"], b["sizes"]):
        for da, db in zip(sa["draws"], sb["draws"]):
            for k in ("rmse", "mae", "maxae", "r2", "length_scale", "regularization"):
                assert da[k] == pytest.approx(db[k], rel=1e-9, abs=1e-12), (sa["size"], k)


def test_atoms_far_outside_their_cell_are_wrapped_not_expanded():
    """An atom 1e6 Angstrom outside its cell (std::bad_alloc before positions were wrapped): the features
    equal those of the atom inside the cell."""
    from repbench.representations import make_representation
    from repbench.structures import StructureSet, TargetInfo

    crystals = _crystals(2, seed=5)
    far = [a.copy() for a in crystals]
    n_cells = np.array([277778, -1, 0])  # about 1e6 Angstrom along a1
    far[0].positions[1] += n_cells @ np.asarray(far[0].cell)
    assert np.abs(far[0].positions).max() > 9e5
    feats = []
    for structs in (crystals, far):
        s = StructureSet.from_ase("c", structs, targets={"e": np.zeros(2)},
                                  target_info={"e": TargetInfo("eV", True)})
        rep = make_representation({"soap": {"r_cut": 3.5, "n_max": 2, "l_max": 1, "sigma": 0.5}}, s.elements,
                                  True)
        from repbench.representations.base import compute

        feats.append(no_hang(lambda: compute(rep, s, np.arange(2), progress=False), timeout=60))
    np.testing.assert_allclose(feats[0].values, feats[1].values, rtol=1e-7, atol=1e-9)


# ====================================================================== class 6: HDF5 files repbench reads
SECRET = "TOP-SECRET-TOKEN"


def _data_h5(tmp_path: Path) -> Path:
    """A small prepared run's data.h5 (copied per test)."""
    from repbench.rundir import RunDir
    from repbench.splits import make_splits
    from repbench.structures import StructureSet, TargetInfo

    rng = np.random.default_rng(0)
    n = 30
    water = np.tile([[0, 0, 0], [0.96, 0, 0], [0, 0.96, 0]], (n, 1)) + rng.random((3 * n, 3)) * 0.1
    s = StructureSet(name="t", z=np.tile([8, 1, 1], n), positions=water, offsets=np.arange(0, 3 * n + 1, 3),
                     cells=np.zeros((n, 3, 3)), pbc=np.zeros((n, 3), bool),
                     ids=np.arange(n).astype(str), targets={"e": rng.random(n)},
                     target_info={"e": TargetInfo("eV", True)})
    sp = make_splits(n, None, seed=0, test=10, predefined_test=None, train_sizes=[5, 10], draws=1,
                     tune_train=10, tune_val=5, inner_folds=2, inner_val_fraction=0.2)
    rd = RunDir(tmp_path / "run")
    rd.write_data(s, sp, {"data_hash": "x"})
    return rd.data_h5


def _secret(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text((SECRET + "\n") * 200)
    return p


def _external_storage(f, tmp_path):
    secret = _secret(tmp_path)
    n = len(f["structures/ids"])
    del f["structures/ids"]
    f.create_dataset("structures/ids", shape=(n,), dtype="S17", external=[(str(secret), 0, 17 * n)])


def _external_link(f, tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as g:
        g["z"] = np.full(len(f["structures/z"]), 1)
    del f["structures/z"]
    f["structures/z"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/z")


def _soft_link(f, tmp_path):
    del f["splits/test"]
    f["splits/test"] = h5py.SoftLink("/splits/pool")


def _virtual(f, tmp_path):
    pos = f["structures/positions"][()]
    with h5py.File(tmp_path / "other.h5", "w") as g:
        g["p"] = pos
    layout = h5py.VirtualLayout(shape=pos.shape, dtype=np.float64)
    layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "p", shape=pos.shape)
    del f["structures/positions"]
    f.create_virtual_dataset("structures/positions", layout)


def _gzip(f, tmp_path):
    pos = f["structures/positions"][()]
    del f["structures/positions"]
    f.create_dataset("structures/positions", data=pos, compression="gzip")


def _huge_shape(f, tmp_path):
    del f["structures/positions"]
    f.create_dataset("structures/positions", shape=(2**40, 3), dtype="f8", chunks=(1024, 3))


UNSAFE = {"external-storage": (_external_storage, "/structures/ids has external storage"),
          "external-link": (_external_link, "/structures/z is an external link"),
          "soft-link": (_soft_link, "/splits/test is a SoftLink"),
          "virtual-dataset": (_virtual, "/structures/positions is a virtual dataset"),
          "foreign-filter": (_gzip, "/structures/positions uses HDF5 filter 1")}
OVERSIZED = {"huge-shape": (_huge_shape, "/structures/positions declares shape (1099511627776, 3)"),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE) + sorted(OVERSIZED))
def test_crafted_data_h5_is_refused_before_it_is_read(kind, tmp_path):
    from repbench.rundir import RunDir

    path = _data_h5(tmp_path)
    fn, needle = {**UNSAFE, **OVERSIZED}[kind]
    with h5py.File(path, "a") as f:
        fn(f, tmp_path)
    res = no_hang(lambda: RunDir(tmp_path / "run").read_data())
    head = "data.h5 is not a file repbench wrote" if kind in UNSAFE else "data.h5 is damaged or truncated"
    msg = expect_error(res, RunDirError, head, needle, str(path))
    assert SECRET not in msg


def test_unsafe_hdf5_is_refused_in_cache_entries_and_oversized_ones_recomputed(tmp_path):
    from repbench.cache import ArrayCache

    cache = ArrayCache(tmp_path / "cache", "kernels")
    spec = {"k": 1}
    cache.put(spec, {"K": np.ones((4, 4))})
    entry = cache.path(spec)
    secret = _secret(tmp_path)
    with h5py.File(entry, "a") as f:
        del f["K"]
        f.create_dataset("K", shape=(4, 4), dtype="f8", external=[(str(secret), 0, 128)])
    msg = expect_error(no_hang(lambda: cache.get(spec, {"K": (4, 4)})), RunDirError,
                       "the kernels cache entry is not a file repbench wrote: /K has external storage",
                       entry.name)
    assert SECRET not in msg and entry.exists()
    # a huge declared shape is damage: reported, deleted, recomputed, never allocated
    cache.put(spec, {"K": np.ones((4, 4))})
    with h5py.File(entry, "a") as f:
        del f["K"]
        f.create_dataset("K", shape=(2**36, 2**10), dtype="f8", chunks=(16, 16))
    assert no_hang(lambda: cache.get(spec)) is None and not entry.exists()


def test_unsafe_qm9_cache_is_refused(tmp_path, monkeypatch):
    from repbench.datasets import qm9

    cache = tmp_path / "qm9.h5"
    with h5py.File(tmp_path / "other.h5", "w") as g:
        g["gdb"] = np.arange(3)
    with h5py.File(cache, "w") as f:
        f.attrs["signature"] = "sig"
        f["gdb"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/gdb")
    expect_error(no_hang(lambda: qm9.read_cache(cache, "sig")), DataError,
                 "the QM9 cache file is not one repbench wrote: /gdb is an external link", str(cache))


# =========================================================================== class 6: damaged document values
@pytest.fixture
def run_dir(tmp_path):
    from repbench.rundir import RunDir

    rd = RunDir(tmp_path / "run")
    rd.curve_dir.mkdir(parents=True)
    rd.tune_dir.mkdir(parents=True)
    return rd


def _point() -> dict:
    m = {"rmse": 0.2, "mae": 0.1, "maxae": 0.5, "r2": 0.9}
    return {"format": 2, "model_hash": "h", "size": 10, "draw": 0, "n_test": 20, "length_scale": 1.0,
            "regularization": 1e-6, "refine_loss": 0.1, "metrics": m, "metrics_report": dict(m),
            "seconds": 0.1, "at_bound": []}


@pytest.mark.parametrize("edit,key", [
    (lambda d: d.update(length_scale=-1.0), "length_scale"),
    (lambda d: d.update(regularization="small"), "regularization"),
    (lambda d: d["metrics"].update(mae="low"), "metrics.mae"),
    (lambda d: d["metrics_report"].update(rmse=[1.0]), "metrics_report.rmse"),
    (lambda d: d["metrics"].update(maxae=-2.0), "metrics.maxae"),
    (lambda d: d.update(n_test=True), "n_test"),
])
def test_damaged_curve_point_values_are_recomputed_with_a_warning(edit, key, run_dir, caplog):
    from repbench.documents import read_point

    doc = _point()
    assert read_point(run_dir, 10, 0, "h") is None  # missing
    run_dir.point_path(10, 0).write_text(yaml.safe_dump(doc))
    assert read_point(run_dir, 10, 0, "h") is not None
    edit(doc)
    run_dir.point_path(10, 0).write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.WARNING, logger="repbench"):
        assert read_point(run_dir, 10, 0, "h") is None
    assert any(key in r.getMessage() and "recomputing" in r.getMessage() for r in caplog.records), caplog.text


def _best(**krr) -> dict:
    return {"format": 2, "study_hash": "s", "trial": 1, "loss": 0.5,
            "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
            "kernel": {"atom_kernel": "gaussian", "zeta": 2.0, "normalize": False, "dtype": "float64",
                       "block_mb": 256},
            "krr": {"length_scale": 1.0, "regularization": 1e-6, **krr}}


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["krr"].update(length_scale=-1.0), "krr.length_scale is -1.0, not a positive number"),
    (lambda d: d["krr"].update(regularization=[1e-6]), "krr.regularization is [1e-06], not a number"),
    (lambda d: d.update(loss="low"), "loss is 'low', not a number"),
    (lambda d: d.update(trial=1.5), "trial is 1.5, not an integer"),
    (lambda d: d["representation"]["soap"].update(r_cut=-3.0), "representation.soap.r_cut"),
    (lambda d: d["kernel"].update(zeta={"uniform": [1, 2]}), "kernel.zeta: a search-space leaf"),
])
def test_damaged_best_yaml_values_name_the_file_and_key(edit, needle, run_dir):
    from repbench.documents import read_best

    doc = _best()
    run_dir.best_yaml.write_text(yaml.safe_dump(doc))
    assert read_best(run_dir, "s").krr["length_scale"] == 1.0
    edit(doc)
    run_dir.best_yaml.write_text(yaml.safe_dump(doc))
    expect_error(no_hang(lambda: read_best(run_dir, "s")), RunDirError, "tune/best.yaml", needle,
                 str(run_dir.best_yaml))


def test_damaged_timings_are_measured_again_with_a_warning(run_dir, caplog):
    from repbench.documents import read_timings, timings_current

    doc = {"format": 2, "model_hash": "h", "representation_timing": {"per_structure_s": 0.001},
           "sizes": [{"train_size": 10, "test_size": 5, "kernel_train_train": {"min_s": 0.1},
                      "kernel_test_train": {"min_s": 0.1}}]}
    run_dir.timings_yaml.write_text(yaml.safe_dump(doc))
    assert timings_current(run_dir, "h", [10])
    doc["sizes"][0]["train_size"] = "ten"
    run_dir.timings_yaml.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.WARNING, logger="repbench"):
        assert not timings_current(run_dir, "h", [10])
    assert "sizes[0].train_size" in caplog.text
    expect_error(no_hang(lambda: read_timings(run_dir)), RunDirError,
                 "timings.yaml is damaged: sizes[0].train_size is 'ten', not an integer")


def test_run_directory_documents_are_read_bounded(run_dir, caplog):
    """A FIFO as curve.yaml, an alias bomb as best.yaml, a FIFO as a curve point: one error naming the file
    (or, for the point, a warning and a recomputation), never a hang."""
    from repbench.documents import read_best, read_curve, read_point

    f = _fifo(run_dir.curve_yaml)
    expect_error(no_hang(lambda: read_curve(run_dir), fifos=(f,)), RunDirError,
                 "a FIFO (named pipe), not a regular file", str(f))
    bomb = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    run_dir.best_yaml.write_text(bomb + "study_hash: *i\n")
    msg = expect_error(no_hang(lambda: read_best(run_dir, "s")), RunDirError, "best.yaml is not valid YAML",
                       "aliases expand")
    assert len(msg) < 600
    f = _fifo(run_dir.point_path(10, 0))
    with caplog.at_level(logging.WARNING, logger="repbench"):
        assert no_hang(lambda: read_point(run_dir, 10, 0, "h"), fifos=(f,)) is None
    assert "recomputing" in caplog.text


def test_repbench_errors_stay_repbench_errors():
    """The helpers raise the classes the CLI turns into one line."""
    assert issubclass(ConfigError, RepbenchError) and issubclass(RunDirError, RepbenchError)
