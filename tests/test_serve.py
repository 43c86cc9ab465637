"""`ganforge serve` (issue 19 item 2): the web page's API over every kind of model, its input checks, the CLI,
and the page itself in a real headless Chromium (skipped, naming the apt command, where there is none).

The API tests talk HTTP to the app run by uvicorn in a thread of this process (urllib, no test client); the
browser tests drive Chromium (Debian's chromium + chromium-driver through selenium, nothing downloaded) on the
page that `ganforge serve --port 0` serves from a subprocess. The label check uses the zoo's cgan-digits (label
accuracy 0.95 by the bundled digits classifier): a few-step run draws no digits."""
import http.client
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.commands.serve import listen
from ganforge.commands.serve.app import create_app
from ganforge.commands.serve.models import MAX_SIDE, MAX_UPLOAD_BYTES, load_models
from ganforge.metrics.digits import load_digits_evaluator
from ganforge.registry import RECIPES

ROOT = Path(__file__).resolve().parents[1]
TINY = {"steps": 2, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 8,
        "precision": "fp32"}
CGAN = "zoo:cgan-digits"
# the order of the models on the server's command line: their index in the API
ORDER = ["cgan", "dcgan", "stylegan", "text2image", "pix2pix", "cyclegan", "srgan", "simgan", "ring", "table",
         "dann"]


def _train(root, name, recipe, **kw):
    out = root / name
    ganforge.train(recipe, out=out, progress=False, **{**TINY, **kw})
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of every kind of model the page has a panel (or a message) for, and the zoo's cgan."""
    root = tmp_path_factory.mktemp("serve-runs")
    table = root / "rows.csv"
    rng = np.random.default_rng(0)
    table.write_text("height,weight,colour\n" + "".join(
        f"{h:.2f},{w:.2f},{c}\n" for h, w, c in zip(rng.normal(170, 9, 200), rng.normal(70, 8, 200),
                                                     rng.choice(["red", "blue"], 200))))
    return {"cgan": CGAN,
            "dcgan": _train(root, "dcgan", "dcgan", resolution=8, g_width=8, d_width=8),
            "stylegan": _train(root, "stylegan", "stylegan", **RECIPES["stylegan"].smoke),
            "text2image": _train(root, "text2image", "text2image", **RECIPES["text2image"].smoke),
            "pix2pix": _train(root, "pix2pix", "pix2pix", **RECIPES["pix2pix"].smoke),
            "cyclegan": _train(root, "cyclegan", "cyclegan", **RECIPES["cyclegan"].smoke),
            "srgan": _train(root, "srgan", "srgan", **RECIPES["srgan"].smoke),
            "simgan": _train(root, "simgan", "simgan", **RECIPES["simgan"].smoke),
            "ring": _train(root, "ring", "gan", data="toy:ring"),
            "table": _train(root, "table", "gan", data=f"csv:{table}"),
            "dann": _train(root, "dann", "dann", **RECIPES["dann"].smoke)}


@contextmanager
def running(app):
    """The app served by uvicorn on a free loopback port in a thread of this process; yields its base URL."""
    import uvicorn
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def models(runs):
    return load_models([runs[k] for k in ORDER])


@pytest.fixture(scope="module")
def url(models):
    with running(create_app(models)) as base:
        yield base


def fetch(base, path, body=None, headers=None):
    """(status, content type, body bytes) of a GET (or a POST of `body`)."""
    req = urllib.request.Request(base + path, data=body, headers=headers or {}, method="POST" if body is not None
                                 else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def get(base, model, panel, **params):
    q = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in params.items())
    return fetch(base, f"/api/models/{ORDER.index(model)}/{panel}?{q}")


def error(response) -> str:
    status, kind, body = response
    assert status >= 400 and kind.startswith("application/json"), response
    return json.loads(body)["error"]


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def image_bytes(size=(20, 30), mode="RGB", fmt="PNG") -> bytes:
    a = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    b = io.BytesIO()
    Image.fromarray(a).convert(mode).save(b, fmt)
    return b.getvalue()


def grid_cells(data: bytes, n: int, side: int) -> torch.Tensor:
    """The n images of a viz.grid PNG (2 px padding, enlarged by an integer factor) as N x 1 x side x side in
    [-1, 1]."""
    a = png(data)
    a = a if a.ndim == 2 else a[..., 0]
    nrow = math.ceil(math.sqrt(n))
    factor = a.shape[1] // (nrow * (side + 2) + 2)
    a = a[::factor, ::factor].astype(np.float32) / 127.5 - 1
    cells = [a[2 + r * (side + 2):2 + r * (side + 2) + side, 2 + c * (side + 2):2 + c * (side + 2) + side]
             for r, c in (divmod(i, nrow) for i in range(n))]
    return torch.from_numpy(np.stack(cells))[:, None]


def predicted(data: bytes, n: int = 16) -> list[int]:
    return load_digits_evaluator().logits(grid_cells(data, n, 16)).argmax(1).tolist()


# -- what the page offers for each kind of model -----------------------------------------------------------------
PANELS = {"cgan": ["sample", "walk"], "dcgan": ["sample", "walk"], "stylegan": ["sample", "walk", "style"],
          "text2image": ["sample", "walk"], "pix2pix": ["translate"], "cyclegan": ["translate"],
          "srgan": ["upscale"], "simgan": ["sample"], "ring": ["sample"], "table": ["sample"], "dann": []}


def test_every_kind_of_model_gets_its_panels_or_a_message(url):
    status, kind, body = fetch(url, "/api/models")
    assert status == 200 and kind == "application/json"
    described = json.loads(body)["models"]
    assert [d["index"] for d in described] == list(range(len(ORDER)))
    for name, d in zip(ORDER, described):
        assert d["panels"] == PANELS[name], name
        assert d["panels"] or "nothing to draw" in d["message"]
    d = dict(zip(ORDER, described))
    assert d["cgan"]["classes"] == [str(k) for k in range(10)] and d["cgan"]["name"] == CGAN
    assert d["stylegan"]["truncation"] and d["stylegan"]["spaces"] == ["z", "w"] and d["stylegan"]["bands"]
    assert not d["dcgan"]["truncation"] and d["dcgan"]["spaces"] == ["z"]
    assert d["text2image"]["caption"] and d["cyclegan"]["directions"] == ["AtoB", "BtoA"]
    assert "CSV" in d["table"]["message"]
    assert d["dcgan"]["counts"][0] == 16 and d["ring"]["counts"][0] == 2000 and d["table"]["counts"][0] == 20


def test_a_seed_draws_its_own_images(url):
    a, b, a2 = (get(url, "dcgan", "sample", seed=s, n=16) for s in (1, 2, 1))
    assert a[0] == b[0] == 200 and a[1] == "image/png"
    assert a[2] == a2[2] and a[2] != b[2]
    assert png(get(url, "dcgan", "sample", seed=1, n=4)[2]).shape != png(a[2]).shape    # n: the grid's size


def test_a_label_draws_that_digit(url):
    for label in (2, 7):
        status, _, body = get(url, "cgan", "sample", seed=0, n=16, label=label)
        assert status == 200
        got = predicted(body)
        assert got.count(label) >= 13, (label, got)
    assert "label must be in 0..9" in error(get(url, "cgan", "sample", label=10))
    assert "unconditional" in error(get(url, "dcgan", "sample", label=1))


def test_truncation_and_caption_change_the_draw(url):
    full, half = (get(url, "stylegan", "sample", seed=3, truncation=t)[2] for t in (1, 0.3))
    assert full != half
    assert "truncation" in error(get(url, "dcgan", "sample", truncation=0.5))
    assert "must be in 0.0..1.0" in error(get(url, "stylegan", "sample", truncation=1.5))
    red, blue = (get(url, "text2image", "sample", seed=0, text=t) for t in ("a red circle", "a blue square"))
    assert red[0] == blue[0] == 200 and red[2] != blue[2]
    assert "caption" in error(get(url, "text2image", "sample", text=""))


def test_points_are_a_scatter_and_tables_csv_rows(url):
    status, kind, body = get(url, "ring", "sample")
    assert status == 200 and kind == "image/png" and png(body).shape[1] > 300
    assert get(url, "ring", "sample", n=500)[2] != body                  # 2,000 points unless n says
    status, kind, body = get(url, "table", "sample", n=5, seed=0)
    lines = body.decode().strip().splitlines()
    assert status == 200 and kind.startswith("text/csv") and lines[0] == "height,weight,colour" and len(lines) == 6
    assert len(get(url, "table", "sample")[2].decode().strip().splitlines()) == 1 + 20
    assert all(row.split(",")[2] in ("red", "blue") for row in lines[1:])
    assert "nothing to draw" in error(get(url, "dann", "sample"))
    refined = get(url, "simgan", "sample", n=4, seed=0)
    assert refined[0] == 200 and refined[2] != get(url, "simgan", "sample", n=4, seed=1)[2]


def test_latent_walk_and_style_mixing(url):
    status, kind, body = get(url, "dcgan", "walk", seed=0, frames=3, walks=2)
    with Image.open(io.BytesIO(body)) as gif:
        assert status == 200 and kind == "image/gif" and gif.n_frames == 4 * 3     # 4 keys, a loop
    assert get(url, "stylegan", "walk", space="w", frames=2)[2] != get(url, "stylegan", "walk", space="z", frames=2)[2]
    assert "stylegan" in error(get(url, "dcgan", "walk", space="w"))
    assert "frames must be in 2..24" in error(get(url, "dcgan", "walk", frames=500))
    coarse, fine, both = (get(url, "stylegan", "style", seed=0, bands=b) for b in ("coarse", "fine", "coarse,fine"))
    assert coarse[0] == 200 and coarse[1] == "image/png" and coarse[2] != fine[2]
    assert png(both[2]).shape[0] > png(coarse[2]).shape[0]          # one block of rows per band
    assert "unknown style band" in error(get(url, "stylegan", "style", bands="middle,extra"))
    assert "no style panel" in error(get(url, "dcgan", "style"))


def post(url, model, panel, body, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return fetch(url, f"/api/models/{ORDER.index(model)}/{panel}?{q}", body=body)


def test_uploads_round_trip_through_translate_and_upscale(url):
    status, kind, body = post(url, "pix2pix", "translate", image_bytes((20, 30)))
    assert status == 200 and kind == "image/png" and png(body).shape == (30, 20, 3)
    assert png(post(url, "pix2pix", "translate", image_bytes((20, 30)), resize="true")[2]).shape == (8, 8, 3)
    ab, ba = (post(url, "cyclegan", "translate", image_bytes((16, 16)), direction=d)[2] for d in ("AtoB", "BtoA"))
    assert ab != ba
    assert "translates AtoB and BtoA" in error(post(url, "cyclegan", "translate", image_bytes(), direction="CtoD"))
    status, _, body = post(url, "srgan", "upscale", image_bytes((20, 30), fmt="JPEG"))
    assert status == 200 and png(body).shape == (120, 80, 3)
    assert "no translate panel" in error(post(url, "srgan", "translate", image_bytes()))


def test_uploads_are_checked(url):
    assert "not an image" in error(post(url, "pix2pix", "translate", b"GIF89a but not really" * 10))
    truncated = image_bytes((64, 64))[:300]
    assert "damaged image" in error(post(url, "pix2pix", "translate", truncated))
    assert "empty" in error(post(url, "pix2pix", "translate", b""))
    side = MAX_SIDE["upscale"] + 1
    assert f"up to {side - 1} px" in error(post(url, "srgan", "upscale", image_bytes((side, 4))))
    b = io.BytesIO()
    Image.new("RGB", (4, 4)).save(b, "PPM")
    assert "PPM image" in error(post(url, "pix2pix", "translate", b.getvalue()))


def test_a_large_upload_is_refused_before_it_is_read(url):
    path = f"/api/models/{ORDER.index('pix2pix')}/translate"
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", path)
    conn.putheader("Content-Length", str(MAX_UPLOAD_BYTES + 1))
    conn.endheaders()                                   # the body is never sent: the answer comes first
    r = conn.getresponse()
    assert r.status == 413 and "MiB limit" in json.loads(r.read())["error"]
    conn.close()
    # no length given (chunked): counted while it streams in
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    chunk = b"\0" * 2 ** 20
    conn.request("POST", path, body=iter([chunk] * (MAX_UPLOAD_BYTES // len(chunk)) + [b"\0"]), encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and "MiB limit" in json.loads(r.read())["error"]
    conn.close()


def test_requests_name_models_by_index_and_known_parameters_only(url):
    assert error(fetch(url, "/api/models/99/sample")).startswith("no model 99")
    assert fetch(url, "/api/models/../sample")[0] == 404
    assert "unknown parameter 'path'" in error(get(url, "dcgan", "sample", path="/etc/passwd"))
    assert "seed must be an integer" in error(get(url, "dcgan", "sample", seed="x"))
    assert "n must be in 1..64" in error(get(url, "dcgan", "sample", n=10000))
    assert "n must be in 1..5000" in error(get(url, "ring", "sample", n=10000))


def test_the_page_is_self_contained_and_loopback_only(url, models):
    status, kind, body = fetch(url, "/")
    assert status == 200 and kind.startswith("text/html")
    page = body.decode()
    for name in ("/page.js", "/page.css"):
        assert name in page
        status, _, text = fetch(url, name)
        page += text.decode()
    assert not re.search(r"(https?:)?//[a-z]", page.replace("://", "")), "the page refers to another site"
    with urllib.request.urlopen(url + "/") as r:
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert fetch(url, "/api/models", headers={"Host": "evil.example"})[0] == 400     # DNS rebinding
    with running(create_app(models, host="0.0.0.0")) as open_url:                  # bound to every address
        assert fetch(open_url, "/api/models", headers={"Host": "lab-machine:7860"})[0] == 200


# -- the command line ----------------------------------------------------------------------------------------------
def error_line(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ganforge: error: ") and err.count("\n") == 1, err
    return err


def test_bad_models_and_ports_are_one_line(runs, tmp_path, capsys):
    assert "not a ganforge run directory" in error_line(capsys, "serve", runs["dcgan"], tmp_path)
    assert "no zoo model 'nope'" in error_line(capsys, "serve", "zoo:nope")
    assert "--port must be in 0..65535" in error_line(capsys, "serve", runs["dcgan"], "--port", 70000)
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        taken.listen()
        assert f"cannot listen on 127.0.0.1:{port}" in error_line(capsys, "serve", runs["dcgan"], "--port", port)


def test_a_missing_extra_names_the_install_command(runs, capsys, monkeypatch):
    import importlib.util
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else find(name, *a))
    assert "pip install 'ganforge[serve]'" in error_line(capsys, "serve", runs["dcgan"])


def test_host_and_port_are_where_it_listens(runs, monkeypatch, capsys):
    assert ganforge.serve.__module__ == "ganforge.commands.serve"           # the API function of the command
    import uvicorn
    bound = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: bound.append(sockets[0].getsockname()))
    free = listen("127.0.0.1", 0)
    port = free.getsockname()[1]
    free.close()
    assert main(["serve", runs["dcgan"], "--port", str(port)]) == 0
    assert bound[-1] == ("127.0.0.1", port)                        # the default host: this machine only
    assert f"at http://127.0.0.1:{port}/" in capsys.readouterr().out
    assert main(["serve", runs["dcgan"], CGAN, "--host", "0.0.0.0", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert bound[-1][0] == "0.0.0.0" and bound[-1][1] > 0 and "dcgan, zoo:cgan-digits" in out
    assert "anyone who can reach this machine" in err


# -- the page in a real browser ------------------------------------------------------------------------------------
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
APT = "apt-get install -y chromium chromium-driver"


def _browser(profile):
    """Headless Chromium with its profile in `profile` (a pytest tmp folder: nothing left in /tmp)."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"no Chromium here ({CHROMIUM}, {DRIVER}); install it with `{APT}`")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the test extra) is not installed")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,860", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    with pytest.MonkeyPatch.context() as mp:      # both paths are given: selenium-manager must never run
        mp.setattr(selenium_manager.SeleniumManager, "binary_paths",
                   lambda *a: pytest.fail("selenium-manager would download a driver"))
        return webdriver.Chrome(service=Service(DRIVER), options=opts)


def test_without_chromium_the_browser_test_skips_naming_the_apt_command(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.skip.Exception, match=re.escape(APT)):
        _browser(tmp_path)


@pytest.fixture(scope="module")
def served(runs):
    """`ganforge serve` on a free port, as a user starts it: (base URL, the models' order)."""
    order = ["cgan", "stylegan", "pix2pix"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ganforge", "serve", *(runs[k] for k in order), "--port", "0"]
    # SIGINT as a terminal delivers it (a shell's background job would inherit it ignored)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
    try:
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield match.group(1), order, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def browser(served, tmp_path_factory):
    driver = _browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def _wait(driver, script, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _ready(driver, img, request_part=""):
    """Wait until <img id=img> shows a finished request containing request_part; the image's bytes."""
    _wait(driver, f"const i = document.getElementById('{img}'); return i.dataset.state === 'ready' && "
                  f"i.naturalWidth > 0 && i.dataset.request.includes('{request_part}');")
    b64 = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch(document.getElementById('{img}').src).then(r => r.arrayBuffer()).then(b => {{"
        "let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); })"
        ".catch(e => done('failed: ' + e));")
    assert not b64.startswith("failed"), b64
    import base64
    return base64.b64decode(b64)


def _set(driver, element_id, value):
    driver.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input'));"
                          "e.dispatchEvent(new Event('input'));", element_id, str(value))


def test_the_page_in_a_browser(served, browser, tmp_path):
    base, order, _ = served
    from selenium.webdriver.common.by import By
    browser.get(base + "/")
    assert browser.title == "ganforge serve"
    _wait(browser, "return document.body.dataset.ready === '1';")
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#model option")]
    assert options[0] == f"{CGAN} (cgan)" and len(options) == len(order)
    first = _ready(browser, "sample-img", "seed=0")

    # a seed change produces a new image
    seed = browser.find_element(By.ID, "seed")
    seed.clear()
    seed.send_keys("5")
    assert _ready(browser, "sample-img", "seed=5") != first

    # a label change produces that digit
    _set(browser, "label", 3)
    got = predicted(_ready(browser, "sample-img", "label=3"))
    assert got.count(3) >= 13, got
    walk = _ready(browser, "walk-img")
    assert Image.open(io.BytesIO(walk)).n_frames > 1
    shot = tmp_path / "serve.png"
    browser.save_screenshot(str(shot))
    assert png(shot.read_bytes()).std() > 10                      # not a blank page
    if os.environ.get("GANFORGE_SERVE_SCREENSHOT"):               # the README's picture
        shutil.copy(shot, os.environ["GANFORGE_SERVE_SCREENSHOT"])

    # an upload round-trips: chosen in the file input, translated, shown
    _set(browser, "model", order.index("pix2pix"))
    _wait(browser, "return !document.getElementById('panel-translate').hidden;")
    assert browser.find_element(By.ID, "panel-sample").get_attribute("hidden") is not None
    upload = tmp_path / "photo.png"
    upload.write_bytes(image_bytes((24, 18)))
    browser.find_element(By.ID, "translate-file").send_keys(str(upload))
    out = png(_ready(browser, "translate-out"))
    assert out.shape == (18, 24, 3)
    assert _wait(browser, "return document.getElementById('translate-in').naturalWidth;") == 24

    # a bad upload is a message on the page, not a broken image
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    browser.find_element(By.ID, "translate-file").send_keys(str(bad))
    message = _wait(browser, "const p = document.querySelector('#panel-translate .panel-error');"
                             "return !p.hidden && p.textContent;")
    assert "not an image" in message


def test_ctrl_c_stops_the_server_without_a_traceback(served):
    base, _, proc = served
    assert fetch(base, "/api/models")[0] == 200
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out.strip().endswith("stopped") and "Traceback" not in err, (out, err)
