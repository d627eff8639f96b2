"""What a new user meets before any fit: importing from the source folder, the install hints."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gmmfast

PACKAGE = Path(gmmfast.__file__).parent
# The README of the checkout (or of the copy CI makes) these tests came from: the installed
# package has none beside it.
README = Path(__file__).resolve().parents[1] / "README.md"


def test_importing_the_uncompiled_source_folder_says_what_to_do(tmp_path):
    # The source folder as a fresh clone has it: the Python files, no compiled modules.
    shutil.copytree(PACKAGE, tmp_path / "gmmfast",
                    ignore=lambda folder, names: [n for n in names
                                                  if not n.endswith(".py")
                                                  and not os.path.isdir(os.path.join(folder, n))])
    assert not list((tmp_path / "gmmfast").glob("_em*"))
    result = subprocess.run([sys.executable, "-c", "import gmmfast"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: gmmfast's compiled core is not built in ")
    assert "Install gmmfast (pip install .) and run Python from another folder" in last
    assert "python setup.py build_ext --inplace" in last
    assert "circular" not in result.stderr


def test_the_plot_hint_is_the_readme_install_command(monkeypatch, capsys, tmp_path):
    from gmmfast._cli import MATPLOTLIB_INSTALL, main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--plot", "out.png", "-q"]) == 2
    assert capsys.readouterr().err == ("gmmfast fit: error: --plot needs matplotlib, which is "
                                       f"not installed: {MATPLOTLIB_INSTALL}\n")
    if not README.exists():
        pytest.skip("no README.md beside the tests folder")
    assert f"`{MATPLOTLIB_INSTALL}`" in README.read_text(encoding="utf-8")


def readme_block(after_heading):
    """The first ```python block of the README after the heading ``after_heading``."""
    if not README.exists():
        pytest.skip("no README.md beside the tests folder")
    text = README.read_text(encoding="utf-8")
    section = text[text.index(after_heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```\n", start)]


def test_the_readme_dask_example_runs_as_pasted(tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "example.py").write_text(readme_block("\n## Dask\n"))
    result = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    labels, score, bic = result.stdout.rsplit(None, 2)
    assert labels.startswith("[") and float(score) < 0 < float(bic)


def test_the_public_names_are_imported_on_first_use(tmp_path):
    code = """if True:
        import pickle, sys
        import gmmfast
        assert "sklearn" not in sys.modules and "gmmfast._gaussian_mixture" not in sys.modules
        assert set(gmmfast.__all__) <= set(dir(gmmfast))
        assert "sklearn" not in sys.modules  # dir() imports nothing either
        try:
            gmmfast.GaussianMixtures
        except AttributeError as exc:
            assert str(exc) == "module 'gmmfast' has no attribute 'GaussianMixtures'"
        else:
            raise AssertionError("an unknown name was found")

        import sklearn.base
        model = gmmfast.GaussianMixture(2, random_state=0)
        assert isinstance(model, sklearn.base.BaseEstimator)
        assert gmmfast.GaussianMixture is gmmfast._gaussian_mixture.GaussianMixture
        assert isinstance(gmmfast.BayesianGaussianMixture(), sklearn.base.DensityMixin)
        model.fit([[0.0], [0.1], [5.0], [5.1]]).save("m.npz")
        assert pickle.loads(pickle.dumps(model)).means_.tolist() == model.means_.tolist()
        assert gmmfast.load("m.npz").means_.tolist() == model.means_.tolist()

        namespace = {}
        exec("from gmmfast import *", namespace)
        assert set(gmmfast.__all__) <= set(namespace)
        assert namespace["get_include"]() == gmmfast.get_include()
        assert isinstance(namespace["C_API_VERSION"], int)
        print("ok")
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
