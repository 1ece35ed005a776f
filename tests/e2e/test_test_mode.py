"""With a real [amazon_pay] section (here pointed at the emulator on a socket) pages carry no test band."""

from __future__ import annotations

from tests.support.routers import Router


def test_real_amazon_pay_pages_have_no_band(router: Router) -> None:
    for path in ("/amazon-pay/cancel", "/amazon-pay/error?lang=ja", "/unknown"):
        page = router.get(path)
        assert "<main>" in page.text and 'class="test-mode"' not in page.text, path
