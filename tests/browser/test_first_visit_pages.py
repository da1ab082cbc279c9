"""A first visit in real Chromium: the landing page, registering, the pages a stranger gets when refused, a
390 px phone screen and the dark theme."""

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import QuietcastServer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
# Light and dark page backgrounds (--wash in static/css/quietcast.css).
LIGHT_BACKGROUND = "rgb(243, 245, 248)"
DARK_BACKGROUND = "rgb(17, 22, 28)"
WCAG_AA = 4.5

NOTHING_HERE = "Nothing here"


@pytest.fixture
def visit(browser: Browser, quietcast_server: QuietcastServer) -> Iterator[Callable[..., Page]]:
    """`visit(**context_options)` → a page in a fresh browser that nobody has logged in to."""
    contexts: list[BrowserContext] = []
    script_errors: list[str] = []

    def open_page(**context_options) -> Page:
        context = browser.new_context(base_url=quietcast_server.url, **context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not script_errors, "JavaScript errors on the page:\n" + "\n".join(script_errors)


def test_an_anonymous_first_visit_gets_the_landing_page(visit, screenshots_dir):
    page = visit()
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("without the background noise")
    expect(page.get_by_text("The server removes background noise")).to_be_visible()
    screenshot = page.get_by_role("img", name=re.compile("A friend's page"))
    expect(screenshot).to_be_visible()
    assert screenshot.evaluate("image => image.complete && image.naturalWidth > 0")
    page.screenshot(path=screenshots_dir / "landing.png", full_page=True)

    page.locator("main").get_by_role("link", name="Register").click()
    expect(page).to_have_url(re.compile("/register/$"))
    page.go_back()
    page.locator("main").get_by_role("link", name="Log in").click()
    expect(page).to_have_url(re.compile("/login/$"))


def test_a_signed_in_visit_to_the_start_page_is_home(log_in):
    bob = log_in("bob")
    bob.goto("/")
    expect(bob.get_by_role("heading", name="Hi bob")).to_be_visible()
    expect(bob.get_by_text("The server removes background noise")).to_have_count(0)


def field(page: Page, label: str):
    return page.locator(".field", has=page.get_by_label(label, exact=True))


def test_register_errors_go_under_their_field_and_keep_the_username(visit):
    page = visit()
    page.goto("/register/")
    # Every rule is in view before anything is typed.
    expect(field(page, "Password").get_by_text("at least 8 characters")).to_be_visible()
    expect(field(page, "Username").get_by_text("once “alice” is taken, so is “Alice”")).to_be_visible()

    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password", exact=True).fill("123")
    page.get_by_label("Password confirmation").fill("123")
    page.get_by_role("button", name="Register").click()

    expect(field(page, "Password").locator(".field-errors")).to_contain_text("too short")
    expect(field(page, "Password confirmation").locator(".field-errors")).to_have_count(0)
    expect(page.get_by_label("Username")).to_have_value("erin")
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Username").fill("Alice")
    page.get_by_label("Password", exact=True).fill("a long enough passphrase")
    page.get_by_label("Password confirmation").fill("a long enough passphrase")
    page.get_by_role("button", name="Register").click()
    expect(field(page, "Username").locator(".field-errors")).to_contain_text("“Alice” is taken by “alice”")
    # Only the name was wrong: the passwords stay as typed.
    expect(page.get_by_label("Password confirmation")).to_have_value("a long enough passphrase")


def expect_friendly_not_found(page: Page, way_back: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(NOTHING_HERE)
    expect(page.locator("header.topbar")).to_be_visible()
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == LIGHT_BACKGROUND  # the site's stylesheet, not a bare page
    page.locator("main").get_by_role("link", name=way_back).click()
    expect(page).to_have_url(re.compile("/$"))


def test_a_stranger_gets_the_friendly_page_for_a_recording_link_and_an_unknown_user(log_in):
    recording_url = log_in("alice").request.get("/api/recordings/").json()["recordings"][0]["url"]
    carol = log_in("carol")

    response = carol.goto(recording_url)
    assert response.status == 404
    expect_friendly_not_found(carol, "Back to Home")
    expect(carol.get_by_role("heading", name="Hi carol")).to_be_visible()

    response = carol.goto("/user/nobody/")
    assert response.status == 404
    expect_friendly_not_found(carol, "Back to Home")


def test_an_anonymous_visitor_is_sent_back_to_the_landing_page(visit):
    page = visit()
    response = page.goto("/no-such-page/")
    assert response.status == 404
    expect_friendly_not_found(page, "Go to the start page")
    expect(page.get_by_text("The server removes background noise")).to_be_visible()


def assert_fits_a_phone(page: Page, path: str) -> None:
    page.goto(path)
    layout = page.evaluate(
        """() => {
            const nav = document.querySelector('header nav');
            const link = nav.querySelector('a');
            return {
                scrollWidth: document.documentElement.scrollWidth,
                innerWidth: window.innerWidth,
                navHeight: nav.getBoundingClientRect().height,
                linkHeight: link.getBoundingClientRect().height,
                topbarHeight: document.querySelector('header.topbar').getBoundingClientRect().height,
            };
        }"""
    )
    assert layout["scrollWidth"] <= layout["innerWidth"], f"{path} overflows sideways: {layout}"
    # One line: the navigation is no taller than one of its links (plus its small padding).
    assert layout["navHeight"] < 1.5 * layout["linkHeight"], f"{path}: the navigation wraps: {layout}"
    assert layout["topbarHeight"] < 2.5 * layout["linkHeight"], f"{path}: the top bar wraps: {layout}"


def test_main_pages_fit_a_390_px_phone(visit, log_in, screenshots_dir):
    anonymous = visit(viewport=PHONE, device_scale_factor=2)
    for path in ("/", "/login/", "/register/", "/no-such-page/"):
        assert_fits_a_phone(anonymous, path)
    # The login card fills the width evenly: the same margin left and right.
    anonymous.goto("/login/")
    card = anonymous.locator(".card").bounding_box()
    assert abs(card["x"] - (PHONE["width"] - card["x"] - card["width"])) <= 1

    alice = log_in("alice", viewport=PHONE, device_scale_factor=2)
    for path in ("/", "/user/alice/", "/user/bob/", "/user/carol/", "/search/?q=a", "/friend-requests/"):
        assert_fits_a_phone(alice, path)
    alice.goto("/user/alice/")
    alice.screenshot(path=screenshots_dir / "phone-my-page.png", full_page=True)


def contrast_ratio(page: Page, selector: str) -> float:
    """WCAG contrast between an element's text colour and the background it is drawn on, as computed."""
    return page.locator(selector).first.evaluate(
        """element => {
            const opaque = colour => !/^rgba\\(.*, 0\\)$/.test(colour) && colour !== 'transparent';
            let backdrop = element;
            while (backdrop.parentElement && !opaque(getComputedStyle(backdrop).backgroundColor)) {
                backdrop = backdrop.parentElement;
            }
            const luminance = colour => {
                const [r, g, b] = colour.match(/\\d+/g).slice(0, 3).map(Number).map(value => {
                    const c = value / 255;
                    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
                });
                return 0.2126 * r + 0.7152 * g + 0.0722 * b;
            };
            const [light, dark] = [luminance(getComputedStyle(element).color),
                                  luminance(getComputedStyle(backdrop).backgroundColor)].sort((a, b) => b - a);
            return (light + 0.05) / (dark + 0.05);
        }"""
    )


# Text on its background, on My page: the card text, the muted explanation, links in the top bar, the primary
# button, the denoised badge.
CONTRAST_CHECKED = (".card", ".muted", "header.topbar nav a", "button.primary", ".badge.denoised")


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_theme_follows_the_system_setting_with_readable_contrast(log_in, visit, screenshots_dir, scheme):
    alice = log_in("alice", color_scheme=scheme)
    alice.goto("/user/alice/")
    background = alice.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == (DARK_BACKGROUND if scheme == "dark" else LIGHT_BACKGROUND)
    for selector in CONTRAST_CHECKED:
        assert contrast_ratio(alice, selector) >= WCAG_AA, selector
    if scheme == "dark":
        alice.screenshot(path=screenshots_dir / "dark-my-page.png", full_page=True)

    page = visit(color_scheme=scheme)
    page.goto("/register/")
    page.get_by_role("button", name="Register").click()
    assert contrast_ratio(page, ".field-errors") >= WCAG_AA
    assert contrast_ratio(page, ".help") >= WCAG_AA
