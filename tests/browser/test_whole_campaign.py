"""A whole campaign in Chromium, as each role uses it: the admin imports people, previews
and saves a questionnaire, builds a campaign with the wizard and schedules it; a real
Celery worker sends it through a real SMTP server; an alumna follows the emailed link and
claims a new job (in French); both committee members approve it; the chair publishes
the report, which anyone can read. axe-core checks each page on the way."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from survey.claims.models import Claim
from survey.extensions import db
from tests.browser.conftest import assert_accessible, submit
from tests.committee.conftest import committee  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PEOPLE = ("email;prénom;nom;programme;langue\n"
          "ada@example.org;Ada;Lovelace;Data Analyst;fr\n"
          "grace@example.org;Grace;Hopper;Data Analyst;en\n"
          "alan@example.org;Alan;Turing;Web Developer;en\n")

EXIT_SURVEY = {"slug": "exit-survey", "kind": "employee", "title": {"en": "Leaving us", "fr": "Votre départ"},
               "questions": [{"id": "why", "type": "long_text", "required": True,
                              "label": {"en": "Why are you leaving?", "fr": "Pourquoi partez-vous ?"}}]}


def test_a_whole_campaign_as_each_role(builtin_questionnaires, committee, create_user, open_page, smtp_server,
                                       celery_worker_process):
    admin = open_page(create_user(role="admin"))

    # People, from a CSV with French column names.
    admin.goto("/admin/audiences/")
    admin.get_by_label("CSV file").set_input_files(
        files=[{"name": "alumni.csv", "mimeType": "text/csv", "buffer": PEOPLE.encode()}])
    submit(admin.get_by_role("button", name="Import"))
    assert "3 added" in admin.locator("main").inner_text()

    # A questionnaire, previewed before it is saved.
    admin.goto("/admin/questionnaires/")
    admin.get_by_label("…or paste the definition").fill(json.dumps(EXIT_SURVEY))
    submit(admin.get_by_role("button", name="Upload and preview"))
    assert admin.get_by_role("heading", name="Check before saving").is_visible()
    assert_accessible(admin, "questionnaire preview")
    submit(admin.get_by_role("button", name="Save as version 1"))
    assert "Saved as exit-survey version 1" in admin.locator("main").inner_text()

    # The wizard: questionnaire and privacy, people, timing, check and schedule.
    admin.goto("/admin/campaigns/")
    submit(admin.get_by_role("link", name="New campaign"))
    admin.get_by_label("Name", exact=True).fill("Data Analysts 2026")
    admin.get_by_label("Alumni").check()
    alumni = builtin_questionnaires["alumni-outcomes"]
    admin.get_by_label("Questionnaire version").select_option(str(alumni.id))
    assert_accessible(admin, "wizard step 1")
    submit(admin.get_by_role("button", name="Save and continue"))
    assert "3 people can be emailed" in admin.locator("main").inner_text()
    admin.get_by_label("Only people with these attributes (optional)").fill("programme=Data Analyst")
    submit(admin.get_by_role("button", name="Save and count again"))
    assert "2 people can be emailed" in admin.locator("main").inner_text()
    assert_accessible(admin, "wizard step 2")
    submit(admin.get_by_role("button", name="Save and continue"))
    assert_accessible(admin, "wizard step 3")
    submit(admin.get_by_role("button", name="Save and check"))  # the defaults: send now, close in 30 days
    assert_accessible(admin, "wizard step 4")
    submit(admin.get_by_role("button", name="Schedule"))
    campaign_url = admin.url

    # A real worker sends the two invitations.
    messages = smtp_server.wait_for(2)
    assert sorted(m["to"][0] for m in messages) == ["ada@example.org", "grace@example.org"]
    ada_email = next(m["message"] for m in messages if m["to"][0] == "ada@example.org")
    assert ada_email["Content-Language"] == "fr" or "Bonjour" in ada_email.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+/s/\S+", ada_email.get_body(("plain",)).get_content()).group(0)
    path = "/s/" + link.split("/s/", 1)[1]

    # Ada answers in French and claims a new job.
    ada = open_page(locale="fr-FR")
    ada.goto(path)
    assert ada.locator("html").get_attribute("lang") == "fr"
    ada.locator("input[name=activity][value=employed_full_time]").check()
    ada.locator("input[name=outcomes][value=new_job]").check()
    ada.locator("input[name=attribution][value='4']").check()
    ada.locator("input[name=employer]").fill("ACME")
    ada.locator("input[name=role]").fill("Analyste de données")
    ada.locator("input[name=evidence_link]").fill("https://example.org/profil/ada")
    submit(ada.locator("button[name=submit], input[name=submit]"))
    assert_accessible(ada, "submitted, in French")
    db.session.expire_all()
    [claim] = db.session.scalars(select(Claim)).all()
    assert (claim.outcome_type, claim.state) == ("new_job", "in_review")

    # Both committee members approve it from their queue.
    for member in committee:
        page = open_page(member)
        page.goto("/committee/")
        submit(page.get_by_role("link", name=re.compile("new job", re.I)).first)
        assert_accessible(page, "claim page")
        page.get_by_label("Approve: the evidence shows the outcome").check()
        submit(page.get_by_role("button", name="Record my vote"))
    db.session.expire_all()
    assert db.session.get(Claim, claim.id).state == "proven"

    # The admin sees the progress; the chair publishes; anyone reads the report.
    admin.goto(campaign_url)
    assert re.search(r"1\s*Completed", admin.locator(".counts").inner_text())
    chair = open_page(create_user(role="chair"))
    chair.goto("/reports/publish")
    chair.get_by_label("Title").fill("Data Analysts 2026: outcomes")
    chair.get_by_label("Campaign").select_option(label="Data Analysts 2026")
    submit(chair.get_by_role("button", name="Publish"))
    public_url = chair.locator("a[href^='/p/']").first.get_attribute("href")
    reader = open_page()
    reader.goto(public_url)
    assert "Data Analysts 2026: outcomes" in reader.locator("main").inner_text()
    assert_accessible(reader, "published report")
