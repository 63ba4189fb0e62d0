"""The demo page in a real browser: Debian's Chromium, driven by Playwright, against the real gunicorn."""
import pytest

from tests.support import ARTIFACTS, CHROMIUM

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make setup` installs it)"),
    pytest.mark.timeout(180),
]

# Our own example tweets (never the corpus). Which words an explanation's top parts name depends on the trained model, so the
# test types the first of these positive tweets whose explanation names one of its words as typed.
POSITIVE_CANDIDATES = ["sunny saturday at the beach with friends, best weekend ever!! :D",
                       "great game tonight, proud of the team", "this new album is amazing, love every song",
                       "what a lovely surprise from my sister today", "the concert was brilliant and the crowd was wonderful"]
BATCH = ["my coffee spilled all over my laptop, worst morning ever",
         "the train to berlin leaves at 10:15 from platform 4",
         "just adopted the cutest puppy, so happy right now"]


@pytest.fixture(scope="module")
def browser_page(browser):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    yield page
    page.close()


def test_demo_page_predicts_a_typed_tweet_explains_it_and_a_batch(service_gunicorn, served_model_path, browser_page):
    page = browser_page
    requested, console_errors = [], []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

    from sentiment_nb.pipeline import explain_pipeline, load_pipeline

    explained = explain_pipeline(POSITIVE_CANDIDATES, load_pipeline(served_model_path))
    chosen = [e for e in explained if e["label"] == "positive" and any(p["feature"] in e["text"].split() for p in e["explanation"])]
    assert chosen, f"none of the candidate tweets is positive with one of its words among its explanation's parts: {explained}"
    tweet, expected = chosen[0]["text"], chosen[0]["explanation"]

    page.goto(service_gunicorn.url + "/")
    page.fill("#text", tweet)
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#label") == "positive"
    assert page.locator("#probabilities .fill").count() == 3
    assert page.locator("#model-info").text_content().startswith("model ")

    # the explanation: the library's parts in a table, the tweet's words that pushed it marked with a sign as well as a colour
    page.wait_for_selector("#explanation:not([hidden])")
    rows = page.locator("#parts tbody tr")
    assert [rows.nth(i).locator("td").first.text_content() for i in range(rows.count())] == [p["feature"] for p in expected]
    assert "pushed toward positive" in page.text_content("#legend") and "pushed away from positive" in page.text_content("#legend")
    marks = page.locator("#highlighted mark")
    assert marks.count() >= 1
    for i in range(marks.count()):
        mark = marks.nth(i)
        sign = mark.locator("sup").text_content()
        assert sign in ("+", "\u2212") and mark.get_attribute("title")
        assert ("toward" in mark.get_attribute("class")) == (sign == "+")
        assert mark.text_content().removesuffix(sign) in tweet.split()
    as_typed = [p for p in expected if p["feature"] in tweet.split()]  # single words the normalizer left as they were typed
    for part in as_typed:
        assert page.locator(f"#highlighted mark.{'toward' if part['weight'] > 0 else 'against'}", has_text=part["feature"]).count() == 1

    page.fill("#batch-texts", "\n".join(BATCH))
    page.click("#predict-batch")
    page.wait_for_selector("#batch-results:not([hidden])")
    rows = page.locator("#batch-results tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td").first.text_content() for i in range(3)] == BATCH
    assert rows.nth(0).locator(".label").text_content() == "negative"
    assert rows.nth(2).locator(".label").text_content() == "positive"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-page.png"), full_page=True)

    assert all(url.startswith(service_gunicorn.url) for url in requested), requested  # nothing from a CDN
    assert console_errors == []  # e.g. no Content-Security-Policy violations


def test_demo_page_shows_the_api_error(service_gunicorn, browser_page):
    page = browser_page
    page.goto(service_gunicorn.url + "/")
    page.fill("#text", "a" * 1500)
    page.click("#predict")
    page.wait_for_selector("#error:not([hidden])")
    assert "text_too_long" in page.text_content("#error")
    assert page.is_hidden("#result")
