"""The one-page report.html of a scan, as a reader sees it in headless Chromium: the
volume and per-bleed numbers present, every overlay decoded, no console errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import hemato.predict as P
from tests.browser import headless_chromium, needs_chromium
from tests.data.files import write_dicom_series
from tests.test_predict_trust import SP, head, ml, threshold_network  # noqa: F401  (autouse fixture)


def test_page_is_self_contained(tmp_path: Path) -> None:
    hu, truth = head()
    write_dicom_series(tmp_path / "dcm", hu, spacing=SP)
    r = P.predict("model.pt", tmp_path / "dcm", tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert f"{ml(truth.sum()):.2f} ml" in page and page.count("data:image/png;base64,") == r["n_bleed_slices"] == 3
    assert 'src="http' not in page and "<script" not in page  # nothing loaded from elsewhere


@pytest.mark.slow
@needs_chromium
def test_page_in_headless_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    hu, truth = head()
    write_dicom_series(tmp_path / "dcm", hu, spacing=SP)
    r = P.predict("model.pt", tmp_path / "dcm", tmp_path / "out")
    with headless_chromium() as driver:
        driver.get((tmp_path / "out" / "report.html").as_uri())
        assert driver.find_element(By.ID, "volume").text == f"{ml(truth.sum()):.2f} ml"
        assert "ABC/2 total" in driver.find_element(By.ID, "abc2").text
        rows = driver.find_elements(By.CSS_SELECTOR, "#bleeds tr")
        assert len(rows) == 1 + r["abc2"]["n_bleeds"] == 2
        imgs = driver.find_elements(By.CSS_SELECTOR, "#overlays img")
        assert len(imgs) == r["n_bleed_slices"]
        for img in imgs:
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        assert "DICOM slice positions" in driver.find_element(By.ID, "geometry").text
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, severe
