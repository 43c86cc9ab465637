import functools
import http.server
import threading

import pytest
import torch

# one thread: the suite's nets are tiny, and two OpenMP threads on a shared 2-core machine spin-wait badly
torch.set_num_threads(1)


@pytest.fixture
def tiny():
    """Overrides that make any recipe train in well under a second per step on CPU."""
    return {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1,
            "num_samples": 16}


@pytest.fixture
def local_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving the new folder tmp_path/serve (what a download test puts there):
    yields (base URL, that folder, the list of requested paths). Proxies are switched off for loopback."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "serve"
    folder.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            """Silent: a request line per download would bury the test's own output."""

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()
