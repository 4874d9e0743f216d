"""Sign-in throttling that slows guessing without locking out the innocent, and a site behind a
TLS-terminating proxy: the client's real address, Secure cookies, links to KB_PUBLIC_URL."""

from __future__ import annotations

import csv
import http.client
import io
import re
import shutil
import ssl
import threading
from ipaddress import ip_network
from urllib.parse import urlencode

import pytest
from test_admin import PASSWORD

from ingest.pipeline import ingest_paths
from kb import audit, throttle
from kb.accounts import Accounts, Device
from kb.collection import KnowledgeBase
from kb.errors import ConfigError, TooManyAttempts
from kb.settings import Settings
from web.proxies import client_address

HOME, ELSEWHERE = "203.0.113.5", "203.0.113.6"


class Clock:
    def __init__(self, at: float = 1_000_000.0):
        self.at = at

    def __call__(self) -> float:
        return self.at

    def tick(self, seconds: float) -> None:
        self.at += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def accounts(fake_kb, clock):
    """A curator and a partner on each backend, their sign-ins throttled on `clock`."""
    accounts = Accounts(fake_kb.store, clock=clock)
    accounts.add("cur", "curator", PASSWORD)
    accounts.add("par", "partner", PASSWORD)
    return accounts


def fail(accounts, name: str, address: str, times: int = 1, device: Device | None = None) -> None:
    for _ in range(times):
        assert accounts.authenticate(name, "not the password", address, device) is None


# --- the buckets' arithmetic

def test_a_full_bucket_waits_for_one_failure_to_leak():
    limit = throttle.Limit(burst=3, every=10.0)
    wait, counts = throttle.charge({}, {"k": limit}, 100.0)
    assert (wait, counts) == (0.0, {"k": throttle.Count(1, 100.0)})
    full = throttle.Count(3, 100.0)
    assert throttle.charge({"k": full}, {"k": limit}, 104.0) == (6.0, {})  # nothing counted while full
    assert throttle.charge({"k": full}, {"k": limit}, 110.0) == (0.0, {"k": throttle.Count(3, 110.0)})
    assert throttle.leak(full, limit, 95.0) == full  # a clock set back forgives nothing
    assert throttle.leak(full, limit, 130.0) == throttle.Count(0, 130.0)


# --- accounts, on both backends

def test_failures_are_forgiven_as_time_passes(accounts, clock):
    fail(accounts, "cur", HOME, 5)
    with pytest.raises(TooManyAttempts, match="try again in 120 seconds"):
        accounts.authenticate("cur", PASSWORD, HOME)
    clock.tick(119)
    with pytest.raises(TooManyAttempts, match="try again in 1 seconds"):
        accounts.authenticate("cur", PASSWORD, HOME)
    clock.tick(1)
    fail(accounts, "cur", HOME)  # one has leaked: one more try, then the wait again
    with pytest.raises(TooManyAttempts, match="in 120 seconds"):
        accounts.authenticate("cur", PASSWORD, HOME)
    clock.tick(5 * 120)
    fail(accounts, "cur", HOME, 5)  # every one forgiven: a typo later is not punished for old ones
    clock.tick(5 * 120)
    assert accounts.authenticate("cur", PASSWORD, HOME).name == "cur"


def test_a_success_clears_its_own_failures(accounts):
    fail(accounts, "cur", HOME, 4)
    assert accounts.authenticate("cur", PASSWORD, HOME).name == "cur"
    fail(accounts, "cur", HOME, 5)  # a fresh five
    with pytest.raises(TooManyAttempts):
        accounts.authenticate("cur", PASSWORD, HOME)


def test_a_stranger_cannot_lock_the_owner_out_of_a_browser_they_signed_in_on(accounts):
    owner, other = accounts.get("cur"), accounts.get("par")
    browser = Device("owners-laptop", (owner.id,))
    for n in range(10):  # a guesser at ten addresses: each pair far from its limit, the account full
        fail(accounts, "cur", f"198.51.100.{n}")
    with pytest.raises(TooManyAttempts):
        accounts.authenticate("cur", "guess 11", "198.51.100.77")
    with pytest.raises(TooManyAttempts):  # the owner on a browser never used for it waits too
        accounts.authenticate("cur", PASSWORD, HOME)
    with pytest.raises(TooManyAttempts):  # so does a browser known only for another account
        accounts.authenticate("cur", PASSWORD, HOME, Device("shared", (other.id,)))
    assert accounts.authenticate("cur", PASSWORD, HOME, browser).name == "cur"
    fail(accounts, "cur", HOME, 5, browser)  # the owner's own typos there slow that browser alone
    with pytest.raises(TooManyAttempts):
        accounts.authenticate("cur", PASSWORD, HOME, browser)
    assert accounts.authenticate("par", PASSWORD, HOME).name == "par"


def test_spraying_from_one_address_is_throttled_and_an_own_account_does_not_reset_it(accounts):
    mallory = accounts.add("mallory", "partner", PASSWORD)
    for n in range(29):
        fail(accounts, f"someone{n}", HOME)
    assert accounts.authenticate("mallory", PASSWORD, HOME).name == "mallory"  # takes back its own count only
    fail(accounts, "someone29", HOME)
    with pytest.raises(TooManyAttempts):
        accounts.authenticate("someone30", "guess", HOME)
    assert accounts.authenticate("mallory", PASSWORD, HOME, Device("m", (mallory.id,))).name == "mallory"
    with pytest.raises(TooManyAttempts):
        accounts.authenticate("someone30", "guess", HOME)
    fail(accounts, "someone30", ELSEWHERE)


def test_attempts_sent_at_once_are_all_counted(accounts):
    """Each attempt is counted before its password is checked, so twenty at once get five tries."""
    outcomes, start = [], threading.Barrier(20)

    def guess():
        start.wait()
        try:
            outcomes.append(accounts.authenticate("cur", "guess", HOME))
        except TooManyAttempts:
            outcomes.append("throttled")

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(None) == 5 and outcomes.count("throttled") == 15


# --- the client's address behind proxies

PROXIES = [ip_network("10.0.0.0/8"), ip_network("127.0.0.1")]


@pytest.mark.parametrize("peer, forwarded_for, client", [
    ("198.51.100.1", "203.0.113.5", "198.51.100.1"),  # not a proxy: its headers are the client's own words
    ("10.0.0.2", "203.0.113.5", "203.0.113.5"),
    ("10.0.0.2", "192.0.2.66, 203.0.113.5", "203.0.113.5"),  # what the client made up, left of what the proxy saw
    ("127.0.0.1", "203.0.113.5, 10.0.0.3", "203.0.113.5"),  # through two proxies
    ("10.0.0.2", "10.0.0.9", "10.0.0.9"),  # from inside
    ("10.0.0.2", "", "10.0.0.2"),
    ("10.0.0.2", "unknown", "10.0.0.2"),
    ("10.0.0.2", "203.0.113.5, nonsense, 10.0.0.3", "10.0.0.3"),
    ("10.0.0.2", "2001:db8::7", "2001:db8::7"),
])
def test_the_forwarded_address_is_taken_only_from_trusted_proxies(peer, forwarded_for, client):
    assert client_address(peer, forwarded_for, PROXIES) == client


@pytest.mark.parametrize("env", [{"KB_TRUSTED_PROXIES": "10.0.0.0/8, nonsense"}, {"KB_TRUSTED_PROXIES": "10.0.0.0/33"},
                                 {"KB_PUBLIC_URL": "kb.example.org"}, {"KB_PUBLIC_URL": "ftp://kb.example.org"},
                                 {"KB_PUBLIC_URL": "https://kb.example.org/?x=1"}])
def test_proxy_and_url_settings_are_checked(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_proxy_and_url_settings_are_read():
    settings = Settings.from_env({"KB_TRUSTED_PROXIES": "10.0.0.0/8, ::1", "KB_PUBLIC_URL": "https://kb.example.org/kb/",
                                  "KB_SECURE_COOKIES": "1"})
    assert settings.proxy_networks == (ip_network("10.0.0.0/8"), ip_network("::1"))
    assert (settings.public_url, settings.secure_cookies) == ("https://kb.example.org/kb", True)


# --- the web app (SQLite)

@pytest.fixture
def make_site(tmp_path, model):
    """Sites with one public document, a curator and a partner, on the settings given."""
    from web import create_app

    (tmp_path / "allotments.md").write_text("# Allotments in Croydon\n\nResidents grow vegetables together.\n")
    made = []

    def make(**settings):
        settings = Settings(data_dir=tmp_path / f"data{len(made)}", **settings)
        kb = KnowledgeBase.open(settings, model)
        ingest_paths(kb, [tmp_path / "allotments.md"])
        for name, role in (("cur", "curator"), ("par", "partner")):
            Accounts(kb.store).add(name, role, PASSWORD)
        made.append(kb)
        return create_app(settings, {"TESTING": True, "START_WORKER": False}, kb=kb)

    yield make
    for kb in made:
        kb.close()


def browser(app, address: str = "127.0.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def attempt(client, name: str, password: str, forwarded_for: str | None = None, base_url: str = "http://localhost"):
    csrf = token(client, "/login", base_url)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/login", data={"name": name, "password": password, "csrf_token": csrf}, headers=headers,
                       base_url=base_url)


def token(client, path: str = "/login", base_url: str = "http://localhost") -> str:
    page = client.get(path, base_url=base_url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def failed_from(app) -> set[str]:
    return {e.actor for e in audit.entries(app.extensions["kb"].store, action="login_failed")}


def test_behind_a_trusted_proxy_one_visitors_typos_lock_out_nobody_else(make_site):
    site = make_site(trusted_proxies="127.0.0.1")  # the test client's own address: the proxy
    typist, other = browser(site), browser(site)
    for _ in range(5):
        assert attempt(typist, "par", "wrong", HOME).status_code == 401
    assert attempt(typist, "par", PASSWORD, HOME).status_code == 429
    assert attempt(typist, "par", PASSWORD, f"192.0.2.66, {HOME}").status_code == 429  # made up, on the left
    assert attempt(other, "par", PASSWORD, ELSEWHERE).status_code == 302
    assert attempt(browser(site), "cur", PASSWORD, ELSEWHERE).status_code == 302
    assert failed_from(site) == {f"anonymous@{HOME}"}


def test_forwarded_headers_from_anyone_else_are_ignored(make_site):
    site = make_site(trusted_proxies="10.0.0.0/8")
    direct = browser(site, "198.51.100.1")
    for n in range(5):
        assert attempt(direct, "par", "wrong", f"203.0.113.{n}").status_code == 401
    assert attempt(direct, "par", PASSWORD, "203.0.113.99").status_code == 429
    assert failed_from(site) == {"anonymous@198.51.100.1"}
    assert attempt(browser(site, "10.1.2.3"), "par", PASSWORD, "203.0.113.99").status_code == 302
    scheme = browser(site, "10.1.2.3").get("/export?q=allotments&format=md", headers={"X-Forwarded-Proto": "https"})
    assert "| https://localhost/doc/" in scheme.get_data(as_text=True)
    spoofed = direct.get("/export?q=allotments&format=md", headers={"X-Forwarded-Proto": "https"})
    assert "| http://localhost/doc/" in spoofed.get_data(as_text=True)


def test_the_owners_browser_signs_in_while_a_stranger_is_held(make_site):
    site = make_site()
    owner = browser(site, HOME)
    response = attempt(owner, "cur", PASSWORD)
    assert response.status_code == 302
    device = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("kb_device="))
    assert {"HttpOnly", "Path=/", "Max-Age=31536000", "SameSite=Lax"} <= {p.strip() for p in device.split(";")}
    assert "Secure" not in device
    owner.post("/logout", data={"csrf_token": token(owner, "/admin/documents")})
    for n in range(10):
        assert attempt(browser(site, f"198.51.100.{n}"), "cur", "guess").status_code == 401
    assert attempt(browser(site, "198.51.100.77"), "cur", "guess").status_code == 429
    assert attempt(browser(site, HOME), "cur", PASSWORD).status_code == 429  # a browser never used for it
    forged = browser(site, HOME)
    forged.set_cookie("kb_device", device.split(";")[0].split("=", 1)[1][:-4] + "AAAA", path="/")
    assert attempt(forged, "cur", PASSWORD).status_code == 429
    assert attempt(owner, "cur", PASSWORD).status_code == 302
    assert attempt(browser(site, HOME), "par", PASSWORD).status_code == 302  # other accounts go on as ever
    # the change-password form checks the current password as a sign-in does, the owner's browser included
    new = "a fresh and long passphrase for the curator"
    changed = owner.post("/account/password", data={
        "current_password": PASSWORD, "new_password": new, "confirm_password": new,
        "csrf_token": token(owner, "/account/password")})
    assert changed.status_code == 302


def test_secure_cookies_and_the_public_url(make_site):
    site = make_site(public_url="https://kb.example.org", secure_cookies=True)
    client = browser(site)
    response = attempt(client, "cur", PASSWORD, base_url="https://kb.example.org")
    assert response.status_code == 302
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    assert "; Secure" in cookies["session"] and "; Secure" in cookies["kb_device"]
    export = client.get("/export?q=allotments&format=csv", base_url="http://kb.example.org")  # proxy said no scheme
    links = [row["link"] for row in csv.DictReader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff")))]
    assert links and all(link.startswith("https://kb.example.org/doc/") for link in links)
    assert client.get("/export?q=allotments&format=csv", base_url="http://evil.example").status_code == 400
    assert client.get("/healthz", base_url="http://10.0.0.7:8000").status_code == 200  # a balancer, by address


def test_without_a_public_url_links_follow_the_host(make_site):
    site = make_site()
    export = browser(site).get("/export?q=allotments&format=md", base_url="http://evil.example")
    assert "| http://evil.example/doc/" in export.get_data(as_text=True)  # why KB_PUBLIC_URL exists


# --- end to end: kb serve behind a real HAProxy that terminates TLS

class Visitor:
    """A browser at one loopback address, reaching the site over HTTPS as kb.test, keeping cookies."""

    def __init__(self, port: int, address: str, cafile):
        self.port, self.address = port, address
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        """(status, Set-Cookie headers, body)"""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=60,
                                           source_address=(self.address, 0))
        sent = {"Host": f"kb.test:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body, sent["Content-Type"] = urlencode(form), "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body, sent)
            response = conn.getresponse()
            text = response.read().decode()
            set_cookies = response.msg.get_all("Set-Cookie") or []
        finally:
            conn.close()
        for cookie in set_cookies:
            name, value = cookie.split(";")[0].split("=", 1)
            self.cookies[name] = value
        return response.status, set_cookies, text

    def sign_in(self, name: str, password: str, headers: dict | None = None):
        page = self.request("GET", "/login")[2]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return self.request("POST", "/login", {"name": name, "password": password, "csrf_token": csrf}, headers)


def test_behind_a_tls_terminating_haproxy(tmp_path, model):
    from support.balancer import TlsBalancer, haproxy, self_signed
    from support.nodes import KbNode

    if haproxy() is None or shutil.which("openssl") is None:
        pytest.skip("needs haproxy (make balancer) and openssl")
    (tmp_path / "allotments.md").write_text("# Allotments in Croydon\n\nResidents grow vegetables together.\n")
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "nodes" / "a"), model)  # the node's data folder
    ingest_paths(kb, [tmp_path / "allotments.md"])
    for name, role in (("cur", "curator"), ("par", "partner")):
        Accounts(kb.store).add(name, role, PASSWORD)
    kb.close()
    pem = self_signed(tmp_path / "tls", "kb.test")
    env = {"KB_SECRET_KEY": "a key for this test", "KB_TRUSTED_PROXIES": "127.0.0.1", "KB_SECURE_COOKIES": "1",
           "KB_PUBLIC_URL": "https://kb.test"}
    with KbNode("a", tmp_path / "nodes", env) as node, TlsBalancer(tmp_path / "haproxy", {"a": node.port}, pem) as proxy:
        typist, other = (Visitor(proxy.port, address, pem.parent / "cert.pem") for address in ("127.0.0.2", "127.0.0.3"))
        for _ in range(5):
            assert typist.sign_in("par", "wrong")[0] == 401
        assert typist.sign_in("par", PASSWORD)[0] == 429
        assert typist.sign_in("par", PASSWORD, {"X-Forwarded-For": "127.0.0.9"})[0] == 429  # HAProxy adds the truth
        status, cookies, _ = other.sign_in("par", PASSWORD)  # the same account, another address
        assert status == 302
        assert {c.split("=", 1)[0] for c in cookies} == {"session", "kb_device"}
        assert all("; Secure" in c and "; HttpOnly" in c for c in cookies)
        assert Visitor(proxy.port, "127.0.0.3", pem.parent / "cert.pem").sign_in("cur", PASSWORD)[0] == 302
        status, _, body = other.request("GET", "/export?q=allotments&format=csv")
        links = [row["link"] for row in csv.DictReader(io.StringIO(body.lstrip("\ufeff")))]
        assert status == 200 and links and all(link.startswith("https://kb.test/doc/") for link in links)
        assert other.request("GET", "/export?q=allotments&format=csv", headers={"Host": "evil.example"})[0] == 400
    kb = KnowledgeBase.open(Settings(data_dir=tmp_path / "nodes" / "a"), model)
    assert {e.actor for e in audit.entries(kb.store, action="login_failed")} == {"anonymous@127.0.0.2"}
    kb.close()
