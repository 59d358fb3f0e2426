"""Every page is served with a Content-Security-Policy that runs only our own scripts, and no
page holds a script the policy would block (S18).

The walk covers whatever the URLconf holds, as a signed-in member who may also open the admin,
so a page added later is checked without a test of its own. tests/browser/
test_content_security_policy.py opens the main pages in Chromium and watches for violations.
"""

import re
from html.parser import HTMLParser

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from pipelines_ui.pipelines.models import Pipeline, PipelineVersion
from pipelines_ui.runs.models import Run, StepRun

SPEC = {"parameters": {}, "edges": [],
        "nodes": [{"id": "prep", "component": "python-script@1", "compute": "local"}]}
REQUIRED = {
    "script-src": {"'self'"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
    "connect-src": {"'self'"},
    "img-src": {"'self'", "data:", "blob:"},
}
# Pages that must be among those the walk renders, so that it cannot pass by finding none.
MAIN_PAGES = {"home", "pipelines:list", "pipelines:editor", "pipelines:version",
              "runs:history", "runs:compare", "runs:detail", "compute:targets",
              "registry:models", "docs", "admin:index"}


def routes(patterns=None, prefix="", namespace=""):
    """(name, route) of every URL pattern, route as written (with its <converters>)."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from routes(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield (f"{namespace}{entry.name}" if entry.name else "", prefix + str(entry.pattern))


def concrete(route: str, values: dict[str, str]) -> str:
    """A path for the route with the objects' own ids, else a sample value, in each part."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values.get(m.group(1), "1"), route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), "1"), path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")


def policy(response) -> dict[str, set[str]]:
    header = response.get("Content-Security-Policy", "")
    return {name: set(values) for name, *values in
            (part.split() for part in header.split(";") if part.strip())}


class InlineScripts(HTMLParser):
    """What in a page would run as inline script: <script> without src (data blocks of type
    application/json aside), on* attributes, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src") \
                and attributes.get("type") != "application/json":
            self.found.append(f"<script> without src: {attrs}")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action") and (value or "").strip().lower() \
                    .startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value}>")


def inline_scripts(html: str) -> list[str]:
    parser = InlineScripts()
    parser.feed(html)
    return parser.found


@pytest.fixture
def member(owner):
    """A member of the workspace who may open the admin too."""
    owner.is_staff = owner.is_superuser = True
    owner.save()
    return owner


@pytest.fixture
def values(workspace, local_target, member):
    pipeline = Pipeline.objects.create(workspace=workspace, name="churn", spec=SPEC)
    PipelineVersion.objects.create(pipeline=pipeline, number=1, spec=SPEC)
    run = Run.objects.create(workspace=workspace, pipeline=pipeline, spec=SPEC, status="running")
    StepRun.objects.create(run=run, node="prep", component="python-script@1",
                           compute_target=local_target, state="running")
    return {"pipeline_id": str(pipeline.pk), "number": "1", "run_id": str(run.pk),
            "node": "prep", "object_id": str(member.pk)}


def test_every_route_answers_with_the_policy_and_its_pages_hold_no_inline_script(
        client, member, values):
    client.force_login(member)
    rendered, problems = set(), []
    for name, route in sorted(set(routes())):
        path = concrete(route, values)
        response = client.get(path)
        directives = policy(response)
        missing = {d: want for d, want in REQUIRED.items() if directives.get(d) != want}
        if missing:
            problems.append(f"{path} ({response.status_code}): {missing} in {directives}")
        if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            rendered.add(name)
            problems += [f"{path}: {found}" for found in inline_scripts(response.content.decode())]
    assert not problems, "\n".join(problems)
    assert MAIN_PAGES - rendered == set()


def test_the_sign_in_page_has_the_policy(client, db):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert policy(response)["script-src"] == {"'self'"}
    assert inline_scripts(response.content.decode()) == []


def test_the_check_finds_inline_scripts():
    page = ('<script>alert(1)</script><script src="/a.js"></script>'
            '<script type="application/json" id="d">{}</script>'
            '<select onchange="go()"></select><a href="javascript:go()">x</a>')
    assert len(inline_scripts(page)) == 3
