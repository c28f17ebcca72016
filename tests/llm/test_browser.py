"""The HTML report in a real headless browser (Debian's Chromium; skipped where it is not
installed, .ci/run installs it): every figure decodes and the tables render."""

import shutil
import subprocess

import pytest
from rduflow.inference import RunConfig, SpecDecode, simulate_llm
from rduflow.inference.report import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")

# Appended to a copy of the report (the report itself has no scripts): records, once the
# page has loaded, how many images decoded to a real size.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100).length;
  document.body.setAttribute("data-images", imgs.length + "/" + ok);
});
</script>"""


def _chromium(tmp_path, *args):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


RUNS = {
    "gpu": RunConfig("tiny-llama", "h100-sxm", devices=2, prompt=32, gen=8, spec=SpecDecode("tiny-llama", 2, 0.7)),
    "rdu": RunConfig("tiny-llama", "sn40l", devices=2, prompt=32, gen=8),  # with the tile-grid heatmap
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def page(request, tmp_path_factory):
    run = simulate_llm(RUNS[request.param])
    d = tmp_path_factory.mktemp("report")
    html = render_html(run)
    (d / "report.html").write_text(html)
    (d / "probe.html").write_text(html.replace("</body>", PROBE + "</body>"))
    return d


def test_figures_decode_in_chromium(page):
    res = _chromium(page, "--virtual-time-budget=5000", "--dump-dom", (page / "probe.html").as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert 'data-images="5/5"' in dom
    assert "rduflow: tiny-llama on 2 x " in dom
    for ident in ('id="summary"', 'id="headline"', 'id="sections"', 'id="kinds"'):
        assert ident in dom


def test_screenshot(page):
    shot = page / "shot.png"
    res = _chromium(page, f"--screenshot={shot}", "--window-size=1200,3000", (page / "report.html").as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 50_000  # a page with figures, not a blank one
