"""Live notifications on every page: a friend going live, friend requests arriving and being accepted."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.audio_checks import KEEP_PEER_CONNECTIONS, wait_until_audio_arrives
from tests.browser.test_live_pages import go_live, stop_live

pytestmark = pytest.mark.browser

# Records every browser notification the page constructs (title and options), passing it on to the real one.
RECORD_NOTIFICATIONS = """
    window.testNotifications = [];
    const RealNotification = window.Notification;
    window.Notification = class extends RealNotification {
        constructor(title, options = {}) {
            window.testNotifications.push({ title, ...options });
            super(title, options);
        }
        static get permission() { return RealNotification.permission; }
        static requestPermission() { return RealNotification.requestPermission(); }
    };
"""


def live_toast(page: Page, username: str):
    return page.locator(".toast", has_text=f"{username} is live now.")


def test_a_friend_on_another_page_gets_a_toast_and_listens_from_it(log_in, screenshots_dir):
    alice, bob = log_in("alice"), log_in("bob")
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    bob.goto("/search/")
    expect(bob).to_have_title("Find friends · Quietcast")

    go_live(alice)
    toast = live_toast(bob, "alice")
    expect(toast).to_be_visible(timeout=1000)
    expect(bob).to_have_title("● alice is live — Find friends · Quietcast")
    bob.screenshot(path=screenshots_dir / "live-toast.png")
    # A page opened while she is live says so in its title too, without a toast for what was already the case.
    bob.goto("/friend-requests/")
    expect(bob).to_have_title("● alice is live — Friend requests · Quietcast")
    expect(live_toast(bob, "alice")).to_have_count(0)
    bob.goto("/search/")

    # She stops (the title follows) and starts again: that start is news to the open page.
    stop_live(alice)
    expect(bob).to_have_title("Find friends · Quietcast", timeout=2000)
    go_live(alice)
    live_toast(bob, "alice").get_by_role("link", name="Listen").click()
    expect(bob).to_have_url(re.compile(r"/user/alice/$"))
    expect(bob.get_by_role("button", name="Stop Listening")).to_be_visible()
    expect(bob.locator("[data-stream-state]")).to_have_text("Listening to alice.", timeout=5000)
    wait_until_audio_arrives(bob.evaluate)
    expect(alice.locator("[data-listener-count]")).to_have_text("1 listener", timeout=5000)
    # Her own page already says she is live: no toast there.
    expect(live_toast(bob, "alice")).to_have_count(0)

    stop_live(alice)
    expect(bob).to_have_title("alice · Quietcast", timeout=2000)


def test_after_opting_in_a_friend_gets_a_browser_notification(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    bob.add_init_script(RECORD_NOTIFICATIONS)
    bob.goto("/friend-requests/")
    opt_in = bob.get_by_role("button", name="Notify me when friends go live")
    expect(opt_in).to_be_visible()

    # The browser asks the person; here the test answers yes for them.
    bob.context.grant_permissions(["notifications"])
    opt_in.click()
    expect(opt_in).to_have_count(0)
    bob.reload()
    expect(opt_in).to_have_count(0)  # once allowed, the offer is gone on every page

    go_live(alice)
    expect(live_toast(bob, "alice")).to_be_visible(timeout=1000)
    bob.wait_for_function("() => window.testNotifications.length > 0", timeout=1000)
    notifications = bob.evaluate("window.testNotifications")
    assert [(n["title"], n["tag"]) for n in notifications] == [("alice is live on Quietcast", "quietcast-live-alice")]
    stop_live(alice)


def test_without_permission_there_is_a_toast_but_no_browser_notification(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    bob.add_init_script(RECORD_NOTIFICATIONS)
    bob.goto("/search/")
    go_live(alice)
    expect(live_toast(bob, "alice")).to_be_visible(timeout=1000)
    assert bob.evaluate("window.testNotifications") == []
    stop_live(alice)


def test_the_requests_count_and_the_friends_list_follow_requests_live(log_in):
    bob, carol = log_in("bob"), log_in("carol")
    count = bob.locator("[data-requests-link] .count")
    bob.goto("/search/")
    expect(count).to_have_count(0)
    carol_list = carol.locator("#friend-list")
    expect(carol.get_by_text("No friends yet.")).to_be_visible()  # carol's Home page

    # carol asks bob from another tab; bob's open page counts it at once.
    asking = carol.context.new_page()
    asking.goto("/user/bob/")
    asking.get_by_role("button", name="Add friend").click()
    expect(count).to_have_text("1", timeout=1000)
    expect(count).to_have_attribute("aria-label", "1 pending")

    # bob accepts in another tab: carol's Home page lists him, and bob's count on the first tab goes.
    accepting = bob.context.new_page()
    accepting.goto("/friend-requests/")
    accepting.locator("#received-requests li", has_text="carol").get_by_role("button", name="Accept").click()
    expect(accepting.get_by_text("You and carol are now friends.")).to_be_visible()
    expect(carol_list.locator("li", has_text="bob")).to_be_visible(timeout=1000)
    expect(carol.get_by_text("No friends yet.")).to_be_hidden()
    expect(count).to_have_count(0, timeout=1000)

    # And an unfriending takes him off it again.
    accepting.goto("/user/carol/")
    accepting.get_by_role("button", name="Unfriend").click()
    expect(carol_list.locator("li", has_text="bob")).to_have_count(0, timeout=1000)
    expect(carol.get_by_text("No friends yet.")).to_be_visible()
