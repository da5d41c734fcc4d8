"""Helpers of the frontend page tests: a visitor with a browser-like session, HTML probes."""
import re

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEMPOTENCY_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


class Visitor:
    """A person with a browser (the Flask test client, so cookies persist) using the pages."""

    def __init__(self, client):
        self.client = client

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def csrf_token(self, page_path):
        html = self.client.get(page_path).get_data(as_text=True)
        match = CSRF.search(html)
        assert match, f"no CSRF token on {page_path}"
        return match.group(1)

    def submit(self, page_path, action, data, **kwargs):
        """Open `page_path`, fill its form and post it to `action`, as a browser would."""
        token = self.csrf_token(page_path)
        return self.client.post(action, data={"csrf_token": token, **data}, **kwargs)

    def signup(self, email="buyer@example.com", password="secret-pass"):
        response = self.submit("/auth/signup", "/auth/signup", {"email": email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def sell(self, title="Concert", price="25"):
        response = self.submit("/tickets/new", "/tickets/new", {"title": title, "price": price})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response.headers["Location"].rsplit("/", 1)[-1]

    def cookie(self, name):
        cookie = self.client.get_cookie(name)
        return cookie.value if cookie else None


def text(response):
    return response.get_data(as_text=True)


def field_block(html, name):
    """The markup from the label of field `name` up to the next field, button or end of form."""
    start = html.index(f'<label for="{name}"')
    ends = [i for i in (html.find('<div class="field', start + 1), html.find("<button", start), html.find("</form>", start)) if i != -1]
    return html[start : min(ends)]
