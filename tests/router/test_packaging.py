"""A non-editable install works: the wheel carries the templates and the example config."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_wheel_installs_and_runs_from_another_directory(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("return_router-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "router/templates/page.html" in names and "router/templates/messages/ja.json" in names
    assert "router/example.toml" in names and "well_known/aasa.py" in names
    fixtures = {f"router/amazon_pay/emulator/fixtures/{n}.json" for n in ("address", "buyer", "charge", "session")}
    assert fixtures <= set(names)
    assert not any(name.startswith("tests/") for name in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    script = (
        "import sys, router, router.web.render as p\n"
        "site = sys.argv[1]\n"
        "from router.web.pages import PageView\n"
        "from router.web.render import render_page\n"
        "from router.web.platform import detect_platform\n"
        "assert router.__file__.startswith(site), router.__file__\n"
        "assert str(p.templates_dir()).startswith(site), p.templates_dir()\n"
        "html = render_page(PageView(kind='success', merchant_name='Shop'), 'ja', detect_platform(None), "
        "'https://pay.example.com/r')\n"
        "assert 'lang=\"ja\"' in html\n"
        "from router.amazon_pay.emulator.documents import fixture\n"
        "assert fixture('session')['chargePermissionType'] == 'OneTime'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", script, str(site)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    example = subprocess.run([sys.executable, "-m", "router.cli", "config", "example"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert example.returncode == 0 and "[[routes]]" in example.stdout
