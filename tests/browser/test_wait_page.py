"""The shoppers' waiting-room page, GET /wait/{sale}, in a real headless Chromium against
the real API: a shopper waits behind a crowd, is let in, buys and sees the order; a late
shopper reads sold out; a bad link says what is wrong. The token in the URL fragment
never reaches a server in an address or a Referer, and the page breaks no rule of its
Content-Security-Policy. Its headers, and the 404 for a name that cannot be a sale, are
checked without the browser.

FLASHSALE_SCREENSHOTS=docs saves docs/waiting-room-{waiting,admitted,order,sold-out}.png,
the pictures of the README."""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from flashsale.stock import Outcome
from tests.conftest import Platform, auth, token
from tests.helpers.room import at
from tests.helpers.room import room as plain_room

Shots = Callable[[WebDriver, str], None]
SKU = "TV-55-OLED"
CROWD = 40  # shoppers ahead: four seconds of waiting at 10 a second


def room(**changes: object) -> dict[str, object]:
    return plain_room(**({"shoppingSeconds": 120} | changes))


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def state(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").get_attribute("data-state"))


def reach(driver: WebDriver, wanted: str, timeout: float = 20) -> None:
    """Wait until the page shows `wanted` (its body's data-state)."""
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: state(d) == wanted)
    except TimeoutException:
        seen = [state(driver), text(driver, "headline"), text(driver, "message")]
        raise AssertionError(f"the page never read {wanted!r}; it reads {seen}") from None


def requests_sent(driver: WebDriver) -> list[dict[str, Any]]:
    """Every request the page made since the last call, from Chromium's network log: its
    address and the headers that went on the wire."""
    sent: dict[str, dict[str, Any]] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            request = params["request"]
            if request["url"].startswith(("http:", "https:")):  # not chrome:// pages
                sent.setdefault(params["requestId"], {"headers": {}})["url"] = request["url"]
        elif message["method"] == "Network.requestWillBeSentExtraInfo":
            sent.setdefault(params["requestId"], {"headers": {}})["headers"] = params["headers"]
    return [request for request in sent.values() if "url" in request]


def assert_the_token_stayed_in_the_page(driver: WebDriver, api: str, jwt: str) -> None:
    sent = requests_sent(driver)
    calls = [r for r in sent if "/queue" in r["url"]]
    assert calls and all("Authorization" in r["headers"] for r in calls), sent
    for request in sent:
        assert request["url"].startswith(api + "/"), request["url"]  # nothing elsewhere
        assert jwt not in request["url"] and "token" not in request["url"], request["url"]
        headers = {name.lower(): value for name, value in request["headers"].items()}
        assert "referer" not in headers and "cookie" not in headers, request
        if "authorization" in headers:
            assert headers["authorization"] == f"Bearer {jwt}"
    assert "token" not in driver.current_url  # taken out of the address bar too


def assert_no_broken_rule(driver: WebDriver) -> None:
    """No script error and no Content-Security-Policy violation in the console. (Refusals
    of the API, a 409 say, are logged by Chromium as failed loads: those are expected.)"""
    for entry in driver.get_log("browser"):
        message = entry["message"]
        assert "Content Security Policy" not in message, message
        assert "Uncaught" not in message, message


@contextmanager
def crowd_polling(api: str, sale: str, users: int) -> Iterator[None]:
    """The shoppers ahead keep polling, as a real crowd does: the room's gate advances on
    the calls it gets (at most admitPerSecond), so a lone poller would be let in at the
    pace of its own polls."""
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=api, timeout=10) as client:
            for i in itertools.cycle(range(users)):
                if stop.wait(0.02):
                    return
                client.get(f"/v1/sales/{sale}/queue", headers=auth(f"ahead-{i}"))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_shopper_waits_is_let_in_buys_and_sees_the_order(
    platform: Platform, api: str, worker: object, browser: WebDriver, shots: Shots
) -> None:
    sale = platform.sale(sku=SKU, stock=20, waitingRoom=room(admitPerSecond=10, overbook=3))
    with httpx.Client(base_url=api, timeout=10) as client:  # the crowd that came first
        for i in range(CROWD):
            client.post(f"/v1/sales/{sale}/queue", headers=auth(f"ahead-{i}")).raise_for_status()
    shopper = f"shopper-{uuid.uuid4().hex[:6]}"
    jwt = token(shopper)

    with crowd_polling(api, sale, CROWD):
        browser.get(f"{api}/wait/{sale}#token={jwt}")
        reach(browser, "waiting")
        assert re.fullmatch(r"#\d+", text(browser, "position")), text(browser, "position")
        assert int(text(browser, "ahead")) > 0
        assert re.fullmatch(r"\d+%", text(browser, "chance")), text(browser, "chance")
        assert text(browser, "headline") == "You are in line"
        assert SKU in text(browser, "product")
        shots(browser, "waiting")
        reach(browser, "admitted", timeout=30)

    assert re.fullmatch(r"[12]:\d\d", text(browser, "countdown")), text(browser, "countdown")
    buy = browser.find_element(By.ID, "buy")
    assert buy.is_displayed() and buy.text == "Buy"
    assert browser.switch_to.active_element == buy  # the turn comes with the focus on Buy
    shots(browser, "admitted")

    buy.click()
    reach(browser, "order")
    order_id = text(browser, "order-id")
    # Then the order as stored, once the worker has written it.
    WebDriverWait(browser, 20, poll_frequency=0.1).until(
        lambda d: text(d, "order-status") == "Waiting for payment"
    )
    expires = text(browser, "order-expires")
    assert re.fullmatch(r"\d{1,2}:\d\d( [AP]M)?", expires), expires  # the shopper's locale
    shots(browser, "order")
    order = httpx.get(f"{api}/v1/orders/{order_id}", headers=auth(shopper)).json()
    assert (order["status"], order["sale"], order["quantity"]) == ("pending_payment", sale, 1)
    assert [row["user_id"] for row in platform.orders(sale)] == [shopper]
    assert_the_token_stayed_in_the_page(browser, api, jwt)
    assert_no_broken_rule(browser)


def test_a_late_shopper_on_a_sold_out_sale_reads_sold_out(
    platform: Platform, api: str, browser: WebDriver, shots: Shots
) -> None:
    sale = platform.sale(sku=SKU, stock=1, waitingRoom=room())
    platform.stock.join(sale, "buyer")
    assert platform.stock.poll(sale, "buyer").status == "admitted"
    order = str(uuid.uuid4())
    assert platform.stock.reserve(sale, "buyer", 1, order).outcome is Outcome.ACCEPTED
    platform.stock.ack(sale, order)
    platform.stock.mark_paid(sale, "buyer", 1)  # paid: no unit can come back

    jwt = token("late-shopper")
    browser.get(f"{api}/wait/{sale}#token={jwt}")
    reach(browser, "sold_out")
    assert text(browser, "headline") == "Sold out"
    assert not browser.find_element(By.ID, "buy").is_displayed()
    shots(browser, "sold-out")
    assert_the_token_stayed_in_the_page(browser, api, jwt)
    assert_no_broken_rule(browser)


def test_before_the_start_the_page_waits_for_the_draw_and_a_reload_keeps_it(
    platform: Platform, api: str, browser: WebDriver
) -> None:
    sale = platform.sale(sku=SKU, stock=5, startsAt=at(120), waitingRoom=room(order="draw"))
    browser.get(f"{api}/wait/{sale}#token={token('early-bird')}")
    reach(browser, "draw")
    assert text(browser, "headline") == "You are in the draw"
    assert "drawn at random when the sale starts at " in text(browser, "message")
    browser.refresh()  # the address has no token any more: the tab kept it
    reach(browser, "draw")

    later = platform.sale(sku=SKU, stock=5, startsAt=at(120), waitingRoom=room(opensAt=at(60)))
    browser.get(f"{api}/wait/{later}#token={token('too-early')}")
    reach(browser, "not_open")
    assert_no_broken_rule(browser)


def test_a_bad_link_says_what_is_wrong(platform: Platform, api: str, browser: WebDriver) -> None:
    browser.get(f"{api}/wait/no-such-sale#token={token('someone')}")
    reach(browser, "unknown")
    assert text(browser, "headline") == "This sale does not exist"

    sale = platform.sale(sku=SKU, stock=1, waitingRoom=room())
    browser.get(f"{api}/wait/{sale}")  # no token at all
    reach(browser, "signin")
    browser.get(f"{api}/wait/{sale}#token={token('someone', ttl=-60)}")  # expired
    reach(browser, "signin")
    assert "sign in" in text(browser, "headline").lower()

    plain = platform.sale(sku=SKU, stock=1)  # no waiting room: buy at once
    browser.get(f"{api}/wait/{plain}#token={token('direct-buyer')}")
    reach(browser, "open")
    browser.find_element(By.ID, "buy").click()
    reach(browser, "order")
    assert_no_broken_rule(browser)


def test_the_page_and_its_files_come_with_safe_headers(platform: Platform, api: str) -> None:
    sale = platform.sale(stock=1, waitingRoom=room())
    page = httpx.get(f"{api}/wait/{sale}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = dict(
        rule.strip().split(" ", 1) for rule in page.headers["content-security-policy"].split(";")
    )
    assert csp["default-src"] == "'none'"
    assert {csp[k] for k in ("script-src", "style-src", "connect-src", "img-src")} == {"'self'"}
    assert csp["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "max-age" in page.headers["cache-control"]
    assert not re.search(r"https?://", page.text), "the page names another host"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline

    files = re.findall(r'(?:src|href)="(/wait/assets/[^"]+)"', page.text)
    assert {f.split("?")[0].rsplit("/", 1)[1] for f in files} == {"page.js", "page.css", "icon.svg"}
    for path in files:
        answer = httpx.get(api + path)
        assert answer.status_code == 200 and answer.content, path
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in answer.headers["cache-control"], path  # the address has its hash
    script = httpx.get(api + next(f for f in files if "page.js" in f))
    assert script.headers["content-type"].startswith("text/javascript")
    stale = httpx.get(f"{api}/wait/assets/page.js?v=old")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"

    for bad in ("Bad_Name", "UPPER", "-dash-first", "a" * 254):
        answer = httpx.get(f"{api}/wait/{bad}")
        assert answer.status_code == 404, bad
        assert answer.json()["error"] == "unknown_sale"
    missing = httpx.get(f"{api}/wait/assets/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
