"""The respondent form: what a respondent sees and what gets stored."""
from __future__ import annotations

import io
import json

import pytest
from werkzeug.datastructures import MultiDict

from survey.questionnaires.services import RESERVED_IDS, builtin_definitions
from survey.respond.forms import build_form, extract_answers, help_text, is_visible, visible_answers

ALUMNI, PULSE = builtin_definitions()
assert ALUMNI["slug"] == "alumni-outcomes" and PULSE["slug"] == "employee-pulse"


def text(en, fr):
    return {"en": en, "fr": fr}


# A chain: status → (if employed) employer, required → (if answered) employer_size.
CHAIN = {
    "slug": "chain",
    "kind": "alumnus",
    "title": text("Chain", "Chaîne"),
    "questions": [
        {
            "id": "status", "type": "single", "required": True, "label": text("Status?", "Situation ?"),
            "options": [
                {"value": "employed", "label": text("Employed", "En emploi")},
                {"value": "seeking", "label": text("Seeking", "En recherche")},
            ],
        },
        {
            "id": "employer", "type": "text", "required": True, "label": text("Employer?", "Employeur ?"),
            "show_if": {"question": "status", "equals": "employed"},
        },
        {
            "id": "employer_size", "type": "number", "required": True, "min": 1,
            "label": text("How many people work there?", "Combien de personnes y travaillent ?"),
            "show_if": {"question": "employer", "answered": True},
        },
        {
            "id": "contract", "type": "file", "required": True, "label": text("Contract", "Contrat"),
            "show_if": {"question": "status", "equals": "employed"},
        },
    ],
}


@pytest.fixture
def post(app_ctx):
    """Post ``data`` to a form built from ``definition``; return it validated."""

    def do_post(definition, data, locale="en", answers=None):
        with app_ctx.test_request_context(method="POST", data=data):
            form = build_form(definition, locale, answers=answers, meta={"csrf": False})
            form.ok = form.validate()
        return form

    return do_post


def alumni_answers(**extra):
    data = {"activity": "employed_full_time", "outcomes": ["promotion", "raise"], "submit": "1"}
    data.update(extra)
    return data


# -------------------------------------------------------------------- conditions

def test_any_of_on_a_multi_answer():
    question = {"show_if": {"question": "outcomes", "any_of": ["promotion", "raise"]}}
    assert is_visible(question, {"outcomes": ["new_job", "raise"]})
    assert not is_visible(question, {"outcomes": ["new_job"]})
    assert not is_visible(question, {})


def test_none_of_is_false_until_the_question_is_answered():
    question = {"show_if": {"question": "outcomes", "none_of": ["none"]}}
    assert not is_visible(question, {})
    assert not is_visible(question, {"outcomes": []})
    assert not is_visible(question, {"outcomes": ["none"]})
    assert is_visible(question, {"outcomes": ["promotion"]})


def test_equals_answered_all_and_any():
    assert is_visible({"show_if": {"question": "status", "equals": "employed"}}, {"status": "employed"})
    assert not is_visible({"show_if": {"question": "status", "equals": "employed"}}, {"status": "seeking"})
    # 0 on a 0–10 scale is an answer, and true is not the number 1.
    assert is_visible({"show_if": {"question": "enps", "answered": True}}, {"enps": 0})
    assert not is_visible({"show_if": {"question": "enps", "equals": 1}}, {"enps": True})
    both = {"show_if": {"all": [{"question": "a", "answered": True}, {"question": "b", "any_of": ["x"]}]}}
    either = {"show_if": {"any": [{"question": "a", "answered": True}, {"question": "b", "any_of": ["x"]}]}}
    assert not is_visible(both, {"a": "yes"}) and is_visible(both, {"a": "yes", "b": "x"})
    assert is_visible(either, {"a": "yes"}) and not is_visible(either, {})


def test_hiding_cascades_down_a_chain():
    answers = {"status": "seeking", "employer": "ACME", "employer_size": 50}
    assert visible_answers(CHAIN, answers) == {"status": "seeking"}
    answers["status"] = "employed"
    assert visible_answers(CHAIN, answers) == answers


# ---------------------------------------------------------------- building

def test_fresh_form_hides_follow_up_questions(app_ctx):
    with app_ctx.test_request_context():
        form = build_form(ALUMNI, "en", meta={"csrf": False})
    visible = {field.name for field in form.question_fields() if field.visible}
    assert visible == {"activity", "outcomes", "comment"}
    assert form.employer.question["id"] == "employer"


def test_saved_answers_fill_the_form_and_reveal_follow_ups(app_ctx):
    saved = {"activity": "self_employed", "outcomes": ["business_created"], "attribution": 4,
             "business_name": "Atelier Lovelace", "start_date": "2024-03-01", "salary_change": 0,
             "consent_contact": True}
    with app_ctx.test_request_context():
        form = build_form(ALUMNI, "en", answers=saved, meta={"csrf": False})
        assert '<input checked id="attribution-3" name="attribution" type="radio" value="4">' in str(form.attribution())
        assert 'value="2024-03-01"' in str(form.start_date())
    assert form.business_name.data == "Atelier Lovelace"
    assert form.outcomes.data == ["business_created"]
    assert form.consent_contact.data is True
    assert form.business_name.visible and not form.employer.visible


def test_labels_help_and_buttons_in_french(app_ctx):
    with app_ctx.test_request_context():
        form = build_form(ALUMNI, "fr", meta={"csrf": False})
    assert form.activity.label.text == "Quelle est votre activité principale aujourd'hui\u00a0?"
    assert form.activity.description.startswith("Si vous en avez plusieurs")
    assert help_text(form.activity.question, "fr") == form.activity.description
    assert ("employed_full_time", "En emploi à temps plein") in [(c.value, c.label) for c in form.activity.iter_choices()]
    assert form.attribution.min_label == "Pas du tout"
    assert form.submit.label.text == "Envoyer mes réponses"
    assert form.save.label.text == "Enregistrer et continuer plus tard"


def test_unknown_locale_falls_back_to_english(app_ctx):
    with app_ctx.test_request_context():
        form = build_form(PULSE, "de", meta={"csrf": False})
    assert form.enps.label.text == "How likely are you to recommend working here to a friend?"
    assert [c.value for c in form.enps.iter_choices()] == [str(n) for n in range(11)]


def test_form_names_it_uses_itself_are_reserved_ids(app_ctx):
    """A question id equal to a form attribute would break the form: the checker refuses them all."""
    import re

    with app_ctx.test_request_context():
        form = build_form(ALUMNI, "en")  # with CSRF: csrf_token exists too
    names = {name for name in dir(form) if re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name)}
    question_ids = {question["id"] for question in ALUMNI["questions"]}
    assert names - question_ids <= RESERVED_IDS


# -------------------------------------------------------------- save / submit

def test_submit_requires_the_required_questions(post):
    form = post(ALUMNI, {"submit": "1"})
    assert not form.ok
    assert form.errors == {"activity": ["Please answer this question."], "outcomes": ["Please answer this question."]}


def test_save_accepts_partial_answers(post):
    form = post(ALUMNI, {"save": "1", "activity": "seeking"})
    assert form.ok and form.action == "save"
    assert extract_answers(form, ALUMNI) == {"activity": "seeking"}


def test_no_button_named_counts_as_a_save(post):
    form = post(ALUMNI, {"activity": "seeking"})
    assert form.ok and form.action == "save"


def test_save_still_reports_badly_typed_answers(post):
    data = alumni_answers(save="1", salary_change="a lot", start_date="31/02/2024", attribution="9")
    del data["submit"]
    form = post(ALUMNI, data)
    assert not form.ok and form.action == "save"
    assert form.errors == {
        "attribution": ["Please choose one of the options."],
        "start_date": ["Please enter a date, for example 2024-09-30."],
        "salary_change": ["Please enter a number, for example 12 or 12.5."],
    }


def test_validate_for_can_be_called_explicitly(post, app_ctx):
    with app_ctx.test_request_context(method="POST", data={"activity": "seeking"}):
        form = build_form(ALUMNI, "en", meta={"csrf": False})
        assert form.validate_for("save")
        assert not form.validate_for("submit")
        assert list(form.errors) == ["outcomes"]
        with pytest.raises(ValueError):
            form.validate_for("publish")


def test_a_complete_submission_gives_plain_json(post):
    form = post(ALUMNI, alumni_answers(
        attribution="4", employer="  ACME  ", role="Lead developer", start_date="2024-09-30",
        salary_change="12,5", evidence_link="https://example.org/me", comment="Thanks!",
        consent_contact="y",
    ))
    assert form.ok, form.errors
    answers = extract_answers(form, ALUMNI)
    assert answers == {
        "activity": "employed_full_time", "outcomes": ["promotion", "raise"], "attribution": 4,
        "employer": "ACME", "role": "Lead developer", "start_date": "2024-09-30", "salary_change": 12.5,
        "evidence_link": "https://example.org/me", "comment": "Thanks!", "consent_contact": True,
    }
    assert json.loads(json.dumps(answers)) == answers


def test_whole_numbers_stay_integers_and_zero_is_kept(post):
    form = post(ALUMNI, alumni_answers(salary_change="0"))
    assert form.ok
    assert extract_answers(form, ALUMNI)["salary_change"] == 0
    pulse = post(PULSE, {"pay_fairness": "1", "equality": "5", "wellbeing": "3", "enps": "0", "submit": "1"})
    assert pulse.ok, pulse.errors
    assert extract_answers(pulse, PULSE) == {"pay_fairness": 1, "equality": 5, "wellbeing": 3, "enps": 0}


def test_numbers_out_of_range_or_not_finite(post):
    assert post(ALUMNI, alumni_answers(salary_change="-150")).errors == {
        "salary_change": ["Please enter a number between -100 and 1000."]
    }
    for nonsense in ("nan", "inf", "1e999"):
        assert "salary_change" in post(ALUMNI, alumni_answers(salary_change=nonsense)).errors


def test_text_too_long(post):
    form = post(ALUMNI, alumni_answers(employer="x" * 201))
    assert form.errors == {"employer": ["Please keep this under 200 characters."]}


def test_blank_text_is_no_answer(post):
    form = post(CHAIN, {"status": "employed", "employer": "   ", "submit": "1"})
    assert form.errors["employer"] == ["Please answer this question."]


def test_a_tampered_choice_is_refused(post):
    form = post(ALUMNI, alumni_answers(outcomes=["promotion", "lottery"]))
    assert form.errors == {"outcomes": ["Please choose among the options."]}
    assert "outcomes" not in extract_answers(form, ALUMNI)


def test_unticked_consent_is_not_stored(post):
    form = post(ALUMNI, alumni_answers())
    assert form.ok
    assert "consent_contact" not in extract_answers(form, ALUMNI)


def test_required_consent_must_be_ticked(post):
    definition = {
        "slug": "c", "kind": "employee", "title": text("C", "C"),
        "questions": [{"id": "agree", "type": "consent", "required": True, "label": text("I agree", "J'accepte")}],
    }
    assert post(definition, {"submit": "1"}).errors == {"agree": ["Please tick this box to continue."]}
    ticked = post(definition, {"submit": "1", "agree": "y"})
    assert ticked.ok and extract_answers(ticked, definition) == {"agree": True}


# ------------------------------------------------------- conditional required

def test_required_follow_up_is_required_only_when_shown(post):
    assert post(CHAIN, {"status": "seeking", "submit": "1"}).ok
    shown = post(CHAIN, {"status": "employed", "submit": "1"})
    assert shown.errors == {"employer": ["Please answer this question."], "contract": ["Please add a file."]}


def test_hidden_answers_are_discarded_even_if_invalid(post):
    # The respondent first said "promotion", typed an employer and a bad number,
    # then changed their mind to "none of these".
    form = post(ALUMNI, alumni_answers(outcomes=["none"], employer="ACME", salary_change="lots", attribution="9"))
    assert form.ok, form.errors
    assert extract_answers(form, ALUMNI) == {"activity": "employed_full_time", "outcomes": ["none"]}
    assert not form.employer.visible and form.employer.data is None
    assert 'value="ACME"' not in str(form.employer())


def test_hiding_cascades_in_the_form(post):
    form = post(CHAIN, {"status": "seeking", "employer": "ACME", "employer_size": "-3", "submit": "1"})
    assert form.ok
    assert extract_answers(form, CHAIN) == {"status": "seeking"}
    assert not form.employer_size.visible


def test_file_type_is_checked_and_files_are_left_to_the_caller(post):
    bad = post(CHAIN, {"status": "employed", "employer": "ACME", "employer_size": "12", "submit": "1",
                       "contract": (io.BytesIO(b"MZ\x90\x00"), "contract.exe")})
    assert bad.errors == {"contract": ["Please add a PDF, PNG or JPEG file."]}
    good = post(CHAIN, {"status": "employed", "employer": "ACME", "employer_size": "12", "submit": "1",
                        "contract": (io.BytesIO(b"%PDF-1.4"), "contract.PDF")})
    assert good.ok, good.errors
    assert good.contract.data.filename == "contract.PDF"
    assert extract_answers(good, CHAIN) == {"status": "employed", "employer": "ACME", "employer_size": 12}


def test_a_file_saved_earlier_satisfies_a_required_file_question(post):
    data = {"status": "employed", "employer": "ACME", "employer_size": "12", "submit": "1"}
    assert post(CHAIN, data, answers={"contract": "evidence/42"}).ok


def test_french_error_messages(post):
    form = post(CHAIN, {"status": "employed", "employer": "ACME", "employer_size": "douze", "submit": "1"},
                locale="fr")
    assert form.errors == {
        "employer_size": ["Merci d'indiquer un nombre, par exemple 12 ou 12,5."],
        "contract": ["Merci d'ajouter un fichier."],
    }
    assert post(CHAIN, {"submit": "1"}, locale="fr").errors == {"status": ["Merci de répondre à cette question."]}


def test_explicit_formdata_and_csrf(app_ctx):
    """Given formdata is read instead of the request; CSRF applies by default."""
    with app_ctx.test_request_context(method="POST", data={"activity": "seeking", "save": "1"}):
        form = build_form(ALUMNI, "en", formdata=MultiDict({"activity": "not_seeking", "save": "1"}))
        assert form.activity.data == "not_seeking"
        assert not form.validate()
        assert "csrf_token" in form.errors
