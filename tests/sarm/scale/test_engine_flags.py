"""sarm.scale: Ray stays optional (`import sarm` / `import rabc` never import it); its flags are checked."""

import subprocess
import sys

import pytest

from sarm.cli import main
from sarm.scale.engine import RayOptions


def test_import_sarm_and_rabc_do_not_import_ray():
    code = (
        "import sys, sarm, rabc, sarm.cli.features, sarm.cli.progress, sarm.scale, sarm.scale.features, "
        "sarm.scale.progress; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ray_flags_without_engine_ray_are_refused(tmp_path, capsys):
    assert main(["features", str(tmp_path), "--out", str(tmp_path / "c"), "--num-workers", "2"]) == 2
    assert "--num-workers apply to --engine ray only" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [{"frames_per_task": 100}, {"max_retries": -1}, {"num_workers": 0}])
def test_bad_ray_options_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        RayOptions(**bad)
