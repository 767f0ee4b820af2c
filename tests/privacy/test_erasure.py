"""``flask --app wsgi people erase EMAIL``: a person's data goes, the counts stay."""
from __future__ import annotations

from sqlalchemy import func, select, update

from survey.audiences.models import Stakeholder
from survey.audit.chain import record, verify
from survey.audit.models import AuditEvent, AuditReason
from survey.campaigns.models import Response
from survey.claims.models import Claim, Evidence
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.reports.document import Selection, build
from survey.reports.models import ReportSnapshot
from survey.reports.publishing import publish
from survey.respond.uploads import evidence_dir
from tests.privacy.conftest import EMAIL, SECRETS, personal_needles, stored_text


def _published(story, member):
    snapshot = publish(member("chair"), Selection(campaign_id=story.campaign.id), "Impact 2026")
    db.session.commit()
    return snapshot.slug, bytes(snapshot.content)


def test_erase_removes_the_person_and_keeps_the_counts(story, member, cli, client):
    text_before = stored_text()
    assert all(needle in text_before for needle in personal_needles())  # the scan does see them
    assert (evidence_dir() / story.stored_file).exists()
    slug, content = _published(story, member)
    figures = build([story.campaign.id], ())
    claim_state = story.claim.state
    db.session.execute(update(OutboxMessage).where(OutboxMessage.invitation_id == story.invitation.id)
                       .values(status="sent", sent_at=utcnow(),
                               smtp_reply=f"550 5.1.1 <{EMAIL.upper()}>: Recipient address rejected"))

    result = cli("people", "erase", EMAIL, "--yes")

    assert result.exit_code == 0, result.output
    assert f"Erased person {story.person.id}" in result.output
    assert "drafts: 1" in result.output and "evidence files: 1" in result.output
    assert EMAIL not in result.output
    # Nothing stored names the person or says what they wrote, sent or named.
    text_after = stored_text()
    assert [needle for needle in personal_needles() if needle.lower() in text_after.lower()] == []
    assert "550 5.1.1 <[email]>" in text_after  # the relay's reply stays, without the address
    assert not (evidence_dir() / story.stored_file).exists()
    assert db.session.scalars(select(Evidence).where(Evidence.claim_id == story.claim.id)).all() == []
    assert db.session.scalar(select(Response).where(Response.submitted_at.is_(None))) is None
    # Their links no longer open anything.
    assert client.get(story.link).status_code == 404
    # The counts stay: the published report byte for byte, the live figures, the claim's state.
    snapshot = db.session.scalar(select(ReportSnapshot).where(ReportSnapshot.slug == slug))
    assert bytes(snapshot.content) == content
    assert build([story.campaign.id], ()) == figures
    assert db.session.get(Claim, story.claim.id).state == claim_state
    answers = db.session.scalar(select(Response.answers).where(Response.id == story.claim.response_id))
    assert answers["activity"] == "employed_full_time" and answers["outcomes"] == ["new_job"]
    checked = cli("reports", "verify", slug)
    assert checked.exit_code == 0 and "OK" in checked.output, checked.output
    # The audit chain still holds, and says an erasure happened without saying whose address.
    assert verify().ok
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "erasure"))
    assert event.subject == f"person:{story.person.id}" and event.data["drafts"] == 1
    # The stub is never emailed again.
    person = db.session.get(Stakeholder, story.person.id)
    assert person.suppression_reason == "erased" and person.suppressed_at is not None


def test_erase_asks_first_and_a_no_changes_nothing(story, cli):
    refused = cli("people", "erase", EMAIL, input="n\n")
    assert refused.exit_code != 0
    assert "Aborted" in refused.output
    assert db.session.get(Stakeholder, story.person.id).email == EMAIL
    accepted = cli("people", "erase", EMAIL, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert db.session.get(Stakeholder, story.person.id).email != EMAIL


def test_an_unknown_address_is_a_clear_error(app_ctx, cli):
    result = cli("people", "erase", "nobody@example.org", "--yes")
    assert result.exit_code == 1
    assert "No one is held under 'nobody@example.org'" in result.output


def test_erasing_twice_is_harmless(story, cli):
    assert cli("people", "erase", f"  {EMAIL.upper()} ", "--yes").exit_code == 0  # case and spaces ignored
    after_first = stored_text()
    again = cli("people", "erase", EMAIL, "--yes")
    assert again.exit_code == 1 and "already erased" in again.output
    assert stored_text() == after_first
    assert verify().ok


def test_an_erased_person_is_no_longer_found_under_any_address(story, cli):
    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    stub = db.session.get(Stakeholder, story.person.id).email
    for address in (EMAIL, stub):
        result = cli("people", "export", address)
        assert result.exit_code == 1 and "No one is held" in result.output
        assert SECRETS["draft"] not in result.output


def test_queued_emails_to_the_person_are_cancelled(story, cli):
    from survey.campaigns.models import Invitation

    queued = db.session.scalars(select(OutboxMessage).join(Invitation, Invitation.id == OutboxMessage.invitation_id)
                                .where(Invitation.stakeholder_id == story.person.id,
                                       OutboxMessage.status == "queued")).all()
    assert queued  # the campaigns were started in-process, nothing sent yet
    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    statuses = {db.session.get(OutboxMessage, m.id).status for m in queued}
    assert statuses == {"cancelled"}


def _import(*emails: str):
    from survey.audiences.services import import_audience

    rows = "".join(f"{email},Ada,Lovelace\n" for email in emails)
    report = import_audience(f"email,first_name,last_name\n{rows}".encode(), "alumnus")
    db.session.commit()
    return report


def test_a_person_erased_at_their_request_is_not_imported_again(story, cli):
    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    people_before = db.session.scalar(select(func.count()).select_from(Stakeholder))

    report = _import("someone.new@example.org", f"  {EMAIL.upper()} ")

    assert (report.created, report.updated) == (1, 0)
    assert report.rejected == [{"line": 3, "reason": "this person's data was erased at their request: "
                                                     "they are not imported again"}]
    assert db.session.scalar(select(func.count()).select_from(Stakeholder)) == people_before + 1
    assert EMAIL not in stored_text().lower()  # what keeps them out is not their address


def test_a_person_erased_by_the_retention_policy_may_come_back(story):
    from survey.privacy.erasure import erase_person

    erase_person(db.session.get(Stakeholder, story.person.id), actor="retention")
    db.session.commit()

    report = _import(EMAIL)

    assert (report.created, report.rejected) == (1, [])


def test_a_person_who_asks_to_come_back_may_be_imported_again(story, cli):
    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0

    result = cli("people", "allow", f" {EMAIL.upper()}")

    assert result.exit_code == 0, result.output
    assert _import(EMAIL).created == 1
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "erasure_lifted"))
    assert event is not None and EMAIL not in str(event.data) + event.subject and verify().ok
    again = cli("people", "allow", EMAIL)  # nothing left to lift
    assert again.exit_code != 0 and "No person erased at their request" in again.output


def test_staff_pages_show_an_erased_person_as_erased_not_as_a_placeholder(story, create_user, cli, browser):
    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    admin, chair = browser(create_user("admin")), browser(create_user("chair"))
    for reader, path in ((admin, "/admin/audiences/"), (admin, f"/admin/campaigns/{story.campaign.id}"),
                         (chair, f"/committee/claims/{story.claim.id}")):
        response = reader.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and "personal data erased" in html, path
        assert "erased.invalid" not in html, path


def test_what_the_committee_wrote_about_an_erased_person_leaves_the_pages(story, cli, browser, create_user):
    """Found in review: erasure blanked the review comments, but the same words, written into
    the audit trail with the vote, were still on the claim's page and on the trail."""
    from survey.claims import services as claims

    words = "Spoke to the manager of Zoe at ACME, confirmed"
    review = next(r for r in story.claim.reviews if r.active)
    claims.record_vote(review, "approve", words, reviewer=review.reviewer)
    db.session.commit()
    chair, auditor = browser(create_user(role="chair")), browser(create_user(role="auditor"))
    assert words in chair.get(f"/committee/claims/{story.claim.id}").get_data(as_text=True)

    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    for page in (chair.get(f"/committee/claims/{story.claim.id}"), auditor.get("/audit/")):
        body = page.get_data(as_text=True)
        assert words not in body and "(removed: the person&#39;s data was erased)" in body
    assert verify().ok  # the trail's events are untouched


def _split_on_evidence(story, words: str, asked: str) -> None:
    """One member approves with ``words``, the other asks for evidence with ``asked``: the
    policy's reason for "needs evidence" quotes the request."""
    from survey.claims import services as claims

    first, second = [r for r in story.claim.reviews if r.active][:2]
    claims.record_vote(first, "approve", words, reviewer=first.reviewer)
    claims.record_vote(second, "need_evidence", asked, reviewer=second.reviewer)
    db.session.commit()
    assert story.claim.state == "needs_evidence"


def test_what_was_written_about_the_person_leaves_the_trail_itself(story, cli, browser, create_user):
    """The words are deleted from the database, not only hidden: the chain hashes a salted
    hash of them, and still verifies once they are gone."""
    words, asked = "Zoe's manager at ACME confirmed", "a payslip from ACME, please"
    _split_on_evidence(story, words, asked)
    record("vote", f"claim:{story.claim.id + 1}", actor="system", reason="about someone else")
    db.session.commit()
    kept_for_others = db.session.scalar(select(func.count()).select_from(AuditReason))
    assert words in stored_text() and asked in stored_text()

    result = cli("people", "erase", EMAIL, "--yes")

    assert result.exit_code == 0 and "reasons in the audit trail: 3" in result.output, result.output
    text = stored_text()
    assert words not in text and asked not in text  # the vote's, the request's, the policy's quote
    assert db.session.scalar(select(func.count()).select_from(AuditReason)) == kept_for_others - 3
    assert "about someone else" in text  # what was written about another claim stays
    assert verify().ok
    body = browser(create_user(role="auditor")).get("/audit/").get_data(as_text=True)
    assert asked not in body and body.count("(removed: the person&#39;s data was erased)") == 3
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.subject == f"claim:{story.claim.id}",
                                                         AuditEvent.reason_hash.is_not(None))).all()
    assert len(events) == 3 and {event.written_reason for event in events} == {None}


def test_reasons_written_before_they_were_kept_apart_leave_the_pages(story, cli, browser, create_user, monkeypatch):
    """Events from before reasons were kept apart hold their text in the chain: the pages hide
    it, the policy's quote of a member's request included (found in review: it was shown)."""
    monkeypatch.setattr("survey.audit.chain.kept_apart", lambda *_args: False)
    asked = "a payslip from ACME, please"
    _split_on_evidence(story, "fine", asked)
    chair = browser(create_user(role="chair"))
    assert asked in chair.get(f"/committee/claims/{story.claim.id}").get_data(as_text=True)

    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    for page in (chair.get(f"/committee/claims/{story.claim.id}"),
                 browser(create_user(role="auditor")).get("/audit/")):
        body = page.get_data(as_text=True)
        assert asked not in body and "(removed: the person&#39;s data was erased)" in body
    assert verify().ok


def test_what_is_written_about_the_person_after_the_erasure_is_not_kept(story, cli, browser, create_user):
    """Found in review: their claims stay open, and a comment written after the erasure was
    kept, shown on the trail, and could never be erased (a second erasure is refused)."""
    from survey.claims import services as claims

    assert cli("people", "erase", EMAIL, "--yes").exit_code == 0
    db.session.expire_all()
    words = "her LinkedIn says she left ACME in 2020"
    review = next(r for r in story.claim.reviews if r.active)
    claims.record_vote(review, "reject", words, reviewer=review.reviewer)  # the form asks for a reason
    db.session.commit()

    assert words not in stored_text()
    for page in (browser(create_user(role="chair")).get(f"/committee/claims/{story.claim.id}"),
                 browser(create_user(role="auditor")).get("/audit/")):
        assert words not in page.get_data(as_text=True)
    assert verify().ok


def test_the_auditor_s_note_on_the_person_s_sampled_claim_goes_too(story, member, cli, browser, create_user):
    """Found in review: the note is recorded under the report, not the claim, and stayed in
    the trail in clear after the erasure."""
    from survey.claims import services as claims
    from survey.reports import sampling
    from survey.reports.models import SampleCheck

    for review in [r for r in story.claim.reviews if r.active][:2]:
        claims.record_vote(review, "approve", "", reviewer=review.reviewer)
    db.session.commit()
    assert story.claim.state == "proven"
    snapshot = publish(member("chair"), Selection(campaign_id=story.campaign.id), "Impact")
    db.session.commit()
    auditor = member("auditor")
    sample = sampling.draw_sample(auditor, snapshot, 1)
    db.session.commit()
    note = "phoned Quatremare Forges HR: Zephyrine was promoted"
    sampling.check(auditor, sample.checks[0], "confirmed", note)
    db.session.commit()
    assert note in stored_text()

    result = cli("people", "erase", EMAIL, "--yes")
    assert result.exit_code == 0 and "auditor's notes: 1" in result.output, result.output
    assert note not in stored_text()
    assert db.session.scalar(select(SampleCheck.verdict)) == "confirmed"  # the check itself stays
    assert note not in browser(create_user(role="auditor")).get("/audit/").get_data(as_text=True)
    assert verify().ok
