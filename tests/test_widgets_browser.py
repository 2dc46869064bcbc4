"""The FlowExplorer in a real JupyterLab, driven by headless Chromium through playwright-core.

The test starts ``jupyter lab`` from this virtual environment on a free localhost port (token, temporary
root, configuration and data folders, announcements and update checks off: no network), writes the notebook
of :func:`explorer_notebook` into its root, and runs ``tests/browser/drive.mjs`` in Node: open the notebook,
Run > Run All Cells, wait for the widget, screenshot its panels, move the slider with the keyboard, switch on
a view, pick another model, screenshot after each step. Here the screenshots must differ.

Needs Debian's Chromium, Node.js and playwright-core, which ``bash tests/browser/install.sh`` (``make
browser-deps``) installs; skipped with that advice where they are absent. Screenshots are kept in the test's
``tmp_path`` and, where the environment variable ``EVENTFLOW_SCREENSHOTS`` names a folder, copied there.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

# slow: starting JupyterLab, a kernel and Chromium takes most of its 30-50 s; no lighter check shows that the
# widget really renders in JupyterLab.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

BROWSER_DIR = Path(__file__).parent / "browser"
SCREENSHOTS_ENV = "EVENTFLOW_SCREENSHOTS"
NOTEBOOK = "flow_explorer.ipynb"
TIMEOUT_S = 60  # per browser wait; the whole test takes 30-50 s


def explorer_notebook() -> nbformat.NotebookNode:
    """The notebook the browser runs: a FlowExplorer over a textured disc that rotates and drifts with a
    known flow, compared with a model that predicts zero flow. The drive script needs the explorer's
    ``events`` and ``flow`` views, an ``arrows`` toggle and at least two models (it picks the last one)."""
    data_cell = """\
import numpy as np
from eventflow.widgets import ExplorerData, display_explorer

T, H, W = 6, 96, 128
omega, drift = 0.06, np.array([1.5, 0.5])  # rad and (x, y) px per window
yy, xx = np.mgrid[0:H, 0:W].astype(float)
pix = np.stack([xx, yy])  # (2, H, W), channel 0 = x


def rotate(v, angle):  # rotate (2, H, W) vectors by angle (clockwise on screen: rows grow downwards)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def brightness(t):  # the disc pattern after t windows
    centre = np.array([(W - 1) / 2, (H - 1) / 2]) + drift * t
    u, v = rotate(pix - centre[:, None, None], -omega * t)
    return np.sin(u / 4.0) * np.cos(v / 6.0) * (np.hypot(u, v) < 0.42 * H)


counts = np.zeros((T, 2, H, W))
flow = np.zeros((T, 2, H, W))
for t in range(T):
    change = brightness(t + 1) - brightness(t)
    counts[t, 0] = np.floor(np.clip(change, 0, None) / 0.1)  # positive events
    counts[t, 1] = np.floor(np.clip(-change, 0, None) / 0.1)  # negative events
    rel = pix - (np.array([(W - 1) / 2, (H - 1) / 2]) + drift * t)[:, None, None]
    flow[t] = rotate(rel, omega) - rel + drift[:, None, None]  # exact displacement over the window

data = ExplorerData.from_arrays(
    counts, times=0.05 * np.arange(T), flows={"exact": flow, "zero": np.zeros_like(flow)}, gt_flow=flow
)"""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# FlowExplorer browser check\nSynthetic events with known flow."),
        nbformat.v4.new_code_cell(data_cell),
        nbformat.v4.new_code_cell("explorer = display_explorer(data)"),
    ]
    return nb


# ---------------------------------------------------------------------------------------------- tooling


def _tools_or_skip() -> tuple[str, str]:
    advice = "run `bash tests/browser/install.sh` (make browser-deps)"
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium is None:
        pytest.skip(f"Chromium not found (Debian package chromium); {advice}")
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"Node.js not found; {advice}")
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        pytest.skip(f"playwright-core not installed in tests/browser/node_modules; {advice}")
    return chromium, node


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_config(config_dir: Path, root: Path, port: int, token: str, state: Path) -> None:
    """Server and lab settings that keep JupyterLab off the network and out of the user's folders."""
    server = {
        "ServerApp": {
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "root_dir": str(root),
            "allow_root": True,  # CI and these machines run as root; the server only listens on localhost
        },
        "IdentityProvider": {"token": token},
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            "extension_manager": "readonly",  # the default one asks PyPI about extensions
            "user_settings_dir": str(state / "settings"),
            "workspaces_dir": str(state / "workspaces"),
        },
    }
    (config_dir / "labconfig").mkdir(parents=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server, indent=1))
    disabled = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(disabled))


def _wait_for_server(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer {url.split('?')[0]} within {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """End the server and its kernels (its own process group, started by this test)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _changed_fraction(a_png: Path, b_png: Path, level: int = 24) -> float:
    """Fraction of pixels that differ by more than ``level`` (of 255) in some channel; where the two images
    differ in size, the area outside their common part counts as changed."""
    a = np.asarray(Image.open(a_png).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(b_png).convert("RGB"), dtype=np.int16)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    changed = (np.abs(a[:h, :w] - b[:h, :w]) > level).any(axis=-1).sum()
    total = max(a.shape[0] * a.shape[1], b.shape[0] * b.shape[1])
    return float(changed + total - h * w) / total


# ------------------------------------------------------------------------------------------------ the test


def test_flow_explorer_in_jupyterlab(tmp_path):
    chromium, node = _tools_or_skip()
    root, state, shots = tmp_path / "root", tmp_path / "state", tmp_path / "screenshots"
    for d in (root, state, shots):
        d.mkdir()
    nbformat.write(explorer_notebook(), root / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    _write_config(state / "config", root, port, token, state)
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    base_url = f"http://127.0.0.1:{port}/"
    server_log = tmp_path / "jupyter.log"
    with server_log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_server(proc, f"{base_url}api/status?token={token}", server_log)
        config = {
            "base_url": base_url,
            "token": token,
            "notebook": NOTEBOOK,
            "out_dir": str(shots),
            "user_data_dir": str(state / "chromium-profile"),
            "chromium": chromium,
            "timeout_ms": TIMEOUT_S * 1000,
        }
        (state / "drive.json").write_text(json.dumps(config))
        run = subprocess.run(
            [node, str(BROWSER_DIR / "drive.mjs"), str(state / "drive.json")],
            cwd=BROWSER_DIR,
            capture_output=True,
            text=True,
            timeout=3 * TIMEOUT_S,
        )
    finally:
        _stop(proc)

    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr[-2000:]}
    print(json.dumps(result, indent=1))  # the steps with their times, shown by pytest -s or on failure
    _keep_screenshots(shots)
    assert result["ok"], (
        f"browser run failed: {result.get('error')}\nsteps: {result.get('log')}\n"
        f"console errors: {result.get('consoleErrors')}\nscreenshots in {shots}\nserver log tail:\n"
        f"{server_log.read_text()[-2000:]}"
    )
    assert (result["readoutBefore"], result["readoutAfter"]) == ("0", "2")
    assert result["models"] == ["exact", "zero"]
    slider = _changed_fraction(shots / "0_initial.png", shots / "1_slider.png")
    arrows = _changed_fraction(shots / "1_slider.png", shots / "2_arrows.png")
    model = _changed_fraction(shots / "2_arrows.png", shots / "3_model.png")
    assert slider > 0.01, f"moving the slider changed only {slider:.2%} of the widget"
    assert arrows > 0.05, f"switching on the arrows view changed only {arrows:.2%} of the widget"
    assert model > 0.05, f"picking another model changed only {model:.2%} of the widget"
    # the widget really shows pictures, not an error message: the first screenshot is mostly colourful
    first = np.asarray(Image.open(io.BytesIO((shots / "0_initial.png").read_bytes())).convert("RGB"))
    assert first.shape[1] > 600 and first.std() > 30


def _keep_screenshots(shots: Path) -> None:
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy2(png, Path(target) / png.name)
