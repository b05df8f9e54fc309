"""The public Python API: representation -> kernel -> KRR, checked against dscribe and scikit-learn."""

import numpy as np
from ase.build import molecule

from repbench import api


def test_api_end_to_end_matches_references():
    from dscribe.descriptors import SOAP
    from sklearn.kernel_ridge import KernelRidge

    mols = [molecule(n) for n in ("H2O", "CH4", "NH3", "C2H6", "CH3OH", "HCOOH", "C2H4", "CH3CHO")]
    spec = {"soap": {"r_cut": 4.0, "n_max": 3, "l_max": 2, "sigma": 0.5}}
    X = api.representation(mols, spec, species=["H", "C", "N", "O"])
    ref = SOAP(species=["H", "C", "N", "O"], r_cut=4.0, n_max=3, l_max=2, sigma=0.5).create(mols)
    assert np.abs(X.values - np.concatenate(ref)).max() <= 1e-10
    K = api.kernel(X, length_scale=1.5)
    # brute force
    o = X.offsets
    Kb = np.array([[np.exp(-((X.values[o[i]:o[i + 1], None] - X.values[None, o[j]:o[j + 1]]) ** 2).sum(-1)
                           / (2 * 1.5 ** 2)).sum() for j in range(len(mols))] for i in range(len(mols))])
    assert np.allclose(K, Kb, rtol=1e-10, atol=0)
    y = np.array([len(m) * -3.0 + 0.1 * i for i, m in enumerate(mols)])
    m = api.KRR(regularization=1e-3).fit(K, y)
    sk = KernelRidge(kernel="precomputed", alpha=1e-3).fit(K, y)
    assert np.allclose(m.predict(K), sk.predict(K), rtol=0, atol=1e-8)
    counts = np.array([[np.sum(mm.numbers == z) for z in (1, 6, 7, 8)] for mm in mols], float)
    md = api.KRR(regularization=1e-3, baseline="dressed_atoms").fit(K, y, counts)
    assert np.abs(md.predict(K, counts) - y).max() < 1.0
