"""A user's own networks: --archs-from a file or module, entry points, workers, resume, bad builders."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli, run_cli_process

from architectures import get_spec, list_models
from bench import user_networks
from bench.storage import read_invocation, read_tables

GRID = ["--dataset", "digits", "--epochs", "1", "--no-report"]

NETWORK = '''
"""A user's network file, outside the cnnbench package."""
from torch import nn

from architectures import flat_features, register_model


@register_model("{name}", family="mine", description="one 5x5 conv, max-pool, FC", tags=("mine",))
def build(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """conv 5x5 (6), ReLU, max-pool 2, then a linear head sized by a probe."""
    features = nn.Sequential(nn.Conv2d(in_channels, 6, {kernel}), nn.ReLU(), nn.MaxPool2d(2))
    n = flat_features(features, in_channels, image_size)
    return nn.Sequential(features, nn.Flatten(), nn.Linear(n, num_classes))
'''


def write_network(folder: Path, name: str = "mynet", kernel: int = 5, filename: str = "mynets.py") -> Path:
    path = folder / filename
    path.write_text(NETWORK.format(name=name, kernel=kernel))
    return path


@pytest.fixture(autouse=True)
def _forget_user_networks():
    """Each test starts and ends with the zoo only (the CLI keeps what it loaded in-process)."""
    user_networks.use([])
    yield
    user_networks.use([])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_bad(capsys, *args: str) -> tuple[int, str]:
    status = run_cli(*args)
    return status, capsys.readouterr().err


def assert_one_line(status: int, err: str, *expected: str) -> None:
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for part in expected:
        assert part in lines[0], lines[0]


# -- training, resume, workers ------------------------------------------------------------

def test_a_user_file_trains_on_a_spawned_worker_and_resumes(tmp_path, capsys):
    net = write_network(tmp_path)
    out = tmp_path / "out"
    args = ["--archs-from", str(net), "--archs", "mynet,lenet", *GRID, "--seeds", "2", "--workers", "2",
            "--out", str(out)]
    assert run_cli(*args) == 0
    runs = read_tables(out)["runs.csv"]
    assert set(runs["arch"]) == {"mynet", "lenet"} and set(runs["status"]) == {"ok"}
    mine = runs[runs["arch"] == "mynet"]
    assert set(mine["family"]) == {"mine"}
    # On CPU with 2 workers one run of the four trained in a spawned process: every run id
    # (which hashes the network's code) is the one the driver computes.
    assert set(mine["arch_digest"]) == {get_spec("mynet").digest}
    invocation = read_invocation(out)
    assert invocation["archs_from"] == [{"kind": "file", "ref": str(net.resolve()), "label": str(net.resolve())}]
    assert invocation["arch_info"]["mynet"]["source"] == str(net.resolve())
    assert f"--archs-from {net}" in invocation["reproduce"]
    capsys.readouterr()

    # Resume: the same command reuses every run; a comment edit keeps the ids...
    net.write_text("# my networks, now with a comment\n" + net.read_text())
    assert run_cli(*args) == 0
    assert "(4 reused, 0 trained)" in capsys.readouterr().out
    # ...and a code edit retrains exactly the user's network.
    write_network(tmp_path, kernel=3)
    assert run_cli(*args) == 0
    assert "(2 reused, 2 trained)" in capsys.readouterr().out


def test_a_dotted_module_reaches_spawned_workers(tmp_path, monkeypatch):
    package = tmp_path / "site" / "userpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write_network(package, name="pkgnet", filename="nets.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # spawned workers inherit sys.path
    out = tmp_path / "out"
    assert run_cli("--archs-from", "userpkg.nets", "--archs", "pkgnet", *GRID, "--seeds", "2",
                   "--workers", "2", "--out", str(out)) == 0
    runs = read_tables(out)["runs.csv"]
    assert list(runs["status"]) == ["ok", "ok"]
    assert read_invocation(out)["archs_from"][0] == {"kind": "module", "ref": "userpkg.nets",
                                                     "label": "module userpkg.nets"}


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    (site / "plugin_nets").mkdir(parents=True)
    (site / "plugin_nets" / "__init__.py").write_text("")
    write_network(site / "plugin_nets", name="pluginnet", filename="zoo.py")
    dist = site / "cnnbench_plugin_example-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cnnbench-plugin-example\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cnnbench.architectures]\nexample = plugin_nets.zoo\n")
    monkeypatch.syspath_prepend(str(site))
    assert run_cli("list", "tag:mine") == 0
    assert "pluginnet" in capsys.readouterr().out
    out = tmp_path / "out"
    assert run_cli("--archs", "pluginnet", *GRID, "--seeds", "1", "--workers", "1", "--out", str(out)) == 0
    assert read_invocation(out)["archs_from"][0]["label"] == "entry point example (plugin_nets.zoo)"


def test_list_shows_a_user_network(tmp_path, capsys):
    net = write_network(tmp_path)
    assert run_cli("list", "--archs-from", str(net)) == 0
    text = capsys.readouterr().out
    assert "mynet" in text and "one 5x5 conv, max-pool, FC" in text and "lenet" in text


@pytest.mark.ray
def test_a_user_file_trains_on_ray_workers_with_the_local_run_ids(tmp_path):
    pytest.importorskip("ray")
    net = write_network(tmp_path)
    local, remote = tmp_path / "local", tmp_path / "ray"
    common = ["--archs-from", str(net), "--archs", "mynet", *GRID, "--seeds", "2"]
    assert run_cli(*common, "--workers", "1", "--out", str(local)) == 0
    assert run_cli(*common, "--executor", "ray", "--workers", "2", "--out", str(remote)) == 0
    expected, got = read_tables(local)["runs.csv"], read_tables(remote)["runs.csv"]
    assert list(got["status"]) == ["ok", "ok"]
    assert list(got["run_id"]) == list(expected["run_id"])
    pd.testing.assert_series_equal(got["test_acc"], expected["test_acc"])


def test_the_report_of_another_process_rebuilds_the_user_network(tmp_path):
    net = write_network(tmp_path)
    out = tmp_path / "out"
    assert run_cli("--archs-from", str(net), "--archs", "mynet", *GRID, "--seeds", "1", "--workers", "1",
                   "--out", str(out)) == 0
    done = run_cli_process("report", str(out), cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    html = (out / "report.html").read_text()
    assert "no longer registered" not in html and "feature maps unavailable" not in html
    assert any(p.name.endswith("feature-maps.png") for p in (out / "figures").iterdir())


# -- builders that cannot train: one line, before anything is written ----------------------

BAD_BUILDERS = {
    "raises": ('    raise RuntimeError("forgot to write this")', "could not be built",
               "RuntimeError: forgot to write this (line 9)"),
    "not-a-module": ("    return [nn.Linear(4, 2)]", "is built as a list, not an nn.Module"),
    "wrong-logits": ("    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, 7))",
                     "returns shape (2, 7)", "expected logits of shape (2, 10)"),
    "no-parameters": ("    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Identity())",
                      "has no parameters to train"),
    "fails-forward": ("    return nn.Sequential(nn.Flatten(), nn.Linear(5, num_classes))",
                      "fails on a dry batch of 2 1x28x28 images", "RuntimeError: mat1 and mat2"),
}


@pytest.mark.parametrize("case", BAD_BUILDERS)
def test_a_bad_builder_ends_in_one_line_naming_file_network_and_problem(case, digits_run, tmp_path, capsys):
    body, *expected = BAD_BUILDERS[case]
    net = tmp_path / "broken.py"
    net.write_text(textwrap.dedent('''\
        from torch import nn

        from architectures import register_model


        @register_model("broken", family="mine", description="a builder that goes wrong")
        def broken(in_channels=1, num_classes=10, image_size=28):
            """A builder with a mistake in it."""
        ''') + body + "\n")
    out = tmp_path / "results"
    shutil.copytree(digits_run, out)
    before = snapshot(out)
    status, err = run_bad(capsys, "--archs-from", str(net), "--archs", "broken,lenet", *GRID, "--seeds", "1",
                          "--workers", "1", "--out", str(out))
    assert_one_line(status, err, str(net.resolve()), "network 'broken'", *expected)
    assert snapshot(out) == before  # nothing stored changes
    fresh = tmp_path / "fresh"
    status, err = run_bad(capsys, "--archs-from", str(net), "--archs", "broken", *GRID, "--out", str(fresh))
    assert status == 2 and not fresh.exists()  # checked before the output directory is made


IMPORT_ERRORS = {
    "syntax": ("def build(:\n", "(line 2): SyntaxError"),
    "name": ("x = 1\nundefined_name + 1\n", "(line 3): NameError: name 'undefined_name' is not defined"),
    "import": ("import no_such_module_here\n", "(line 2): ModuleNotFoundError: No module named 'no_such_module_here'"),
    "zoo-name": (("from architectures import register_model\n@register_model('lenet', family='x', description='y')\n"
                  "def f(**kw):\n    pass\n"), "(line 3): ValueError: architecture 'lenet' is already registered"),
}


@pytest.mark.parametrize("case", IMPORT_ERRORS)
def test_a_file_that_does_not_import_names_the_file_and_line(case, tmp_path, capsys):
    text, expected = IMPORT_ERRORS[case]
    net = tmp_path / "nets.py"
    net.write_text("# my networks\n" + text)
    status, err = run_bad(capsys, "--archs-from", str(net), "--archs", "lenet", *GRID, "--out", str(tmp_path / "o"))
    assert_one_line(status, err, f"cannot import {net.resolve()} {expected}")
    assert "lenet" in list_models()  # the zoo is untouched
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("ref", "expected"), [
    ("missing.py", "--archs-from missing.py: no such file"),
    ("no_such_pkg.nets", "cannot import module no_such_pkg.nets: no module named 'no_such_pkg'"),
    ("not a module", "is neither a .py file nor a dotted module name"),
])
def test_a_source_that_cannot_be_found_is_one_line(ref, expected, tmp_path, capsys):
    status, err = run_bad(capsys, "--archs-from", ref, *GRID, "--out", str(tmp_path / "o"))
    assert_one_line(status, err, expected)


def test_two_files_registering_one_name_is_one_line(tmp_path, capsys):
    first = write_network(tmp_path, filename="a.py")
    second = write_network(tmp_path, filename="b.py")
    status, err = run_bad(capsys, "--archs-from", str(first), "--archs-from", str(second), *GRID,
                          "--out", str(tmp_path / "o"))
    assert_one_line(status, err, f"cannot import {second.resolve()} (line 8)", "'mynet' is already registered")


def test_a_worker_gets_the_text_the_driver_read(tmp_path):
    """A file edited (or gone) after the driver read it does not change what workers run."""
    net = write_network(tmp_path)
    (source,) = [user_networks.parse_ref(str(net))]
    user_networks.use([source])
    digest = get_spec("mynet").digest
    net.unlink()
    user_networks.use([])
    user_networks.use([source])  # as a worker would, from the shipped text
    assert get_spec("mynet").digest == digest
