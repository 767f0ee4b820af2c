"""Questionnaire definitions: what an admin sees when uploading one, and versioning."""
from __future__ import annotations

import copy
import json
import random

import pytest
import yaml
from sqlalchemy import func, select

from survey.core.errors import ValidationFailed
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.questionnaires.services import (
    BUILTIN_DIR,
    add_questionnaire,
    freeze_questionnaire,
    latest_versions,
    load_builtin_questionnaires,
    parse_definition,
    validate_definition,
)


def text(en, fr=None):
    return {"en": en, "fr": fr or f"{en} (fr)"}


def small_definition() -> dict:
    """A valid three-question definition that each test breaks in its own way."""
    return {
        "slug": "small",
        "kind": "alumnus",
        "title": text("Small"),
        "questions": [
            {
                "id": "status",
                "type": "single",
                "required": True,
                "label": text("Status?"),
                "options": [
                    {"value": "employed", "label": text("Employed"), "claim": "new_job"},
                    {"value": "seeking", "label": text("Seeking")},
                ],
            },
            {
                "id": "employer",
                "type": "text",
                "label": text("Employer?"),
                "show_if": {"question": "status", "any_of": ["employed"]},
            },
            {"id": "happiness", "type": "scale", "min": 1, "max": 5, "label": text("Happy?")},
        ],
    }


def count_versions(slug: str | None = None) -> int:
    query = select(func.count()).select_from(Questionnaire)
    if slug:
        query = query.where(Questionnaire.slug == slug)
    return db.session.scalar(query)


def problems_of(definition) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(definition)
    return caught.value.details["problems"]


# ------------------------------------------------------------------- built-ins

@pytest.mark.parametrize("name", ["alumni-outcomes.json", "employee-pulse.json"])
def test_builtin_files_are_valid_definitions(name):
    raw = (BUILTIN_DIR / name).read_bytes()
    definition = parse_definition(raw, name)
    assert definition["slug"] == name.removesuffix(".json")
    for question in definition["questions"]:
        assert question["label"]["fr"] and question["label"]["en"]


def test_alumni_outcomes_turn_every_outcome_but_none_into_a_claim():
    definition = json.loads((BUILTIN_DIR / "alumni-outcomes.json").read_text())
    outcomes = next(q for q in definition["questions"] if q["id"] == "outcomes")
    claims = {o["value"]: o.get("claim") for o in outcomes["options"]}
    assert claims == {
        "new_job": "new_job", "changed_employer": "changed_employer", "promotion": "promotion",
        "raise": "raise", "business_created": "business_created", "none": None,
    }


def test_loading_the_builtins_twice_keeps_version_1(app_ctx):
    first = load_builtin_questionnaires()
    db.session.commit()
    again = load_builtin_questionnaires()
    db.session.commit()
    assert [q.id for q in again] == [q.id for q in first]
    assert {(q.slug, q.version, q.kind) for q in first} == {
        ("alumni-outcomes", 1, "alumnus"), ("employee-pulse", 1, "employee"),
    }
    assert count_versions() == 2


# ------------------------------------------------------------ semantic checks

def test_a_valid_definition_comes_back_unchanged():
    assert validate_definition(small_definition()) == small_definition()


def test_duplicate_question_id_is_named():
    definition = small_definition()
    definition["questions"][2]["id"] = "status"
    assert "questions[2] (status): the id 'status' is already used by an earlier question" in problems_of(definition)


def test_condition_on_a_later_question_names_the_offender():
    definition = small_definition()
    definition["questions"][1]["show_if"] = {"question": "happiness", "answered": True}
    assert problems_of(definition) == [
        "questions[1] (employer): show_if refers to 'happiness', which is not an earlier question (it comes later)"
    ]


def test_condition_on_a_missing_question_or_itself():
    definition = small_definition()
    definition["questions"][1]["show_if"] = {"question": "status2", "any_of": ["employed"]}
    definition["questions"][2]["show_if"] = {"question": "happiness", "answered": True}
    assert problems_of(definition) == [
        "questions[1] (employer): show_if refers to 'status2', which is not an earlier question "
        "(there is no such question)",
        "questions[2] (happiness): show_if refers to 'happiness', which is not an earlier question "
        "(it is this question itself)",
    ]


def test_nested_conditions_are_checked_too():
    definition = small_definition()
    definition["questions"][2]["show_if"] = {
        "all": [{"question": "status", "none_of": ["seeking"]}, {"any": [{"question": "later", "answered": True}]}]
    }
    assert problems_of(definition) == [
        "questions[2] (happiness): show_if refers to 'later', which is not an earlier question (there is no such question)"
    ]


def test_duplicate_option_values():
    definition = small_definition()
    definition["questions"][0]["options"][1]["value"] = "employed"
    assert "questions[0] (status): the option value 'employed' appears more than once" in problems_of(definition)


def test_an_exclusive_option_belongs_to_a_multi_question():
    definition = small_definition()
    definition["questions"][0]["options"][1]["exclusive"] = True  # a single question: one answer anyway
    assert problems_of(definition) == [
        "questions[0] (status): 'exclusive' applies to the options of a multi question only"]


def test_options_required_for_choices_and_refused_elsewhere():
    definition = small_definition()
    options = definition["questions"][0].pop("options")
    definition["questions"][2]["options"] = options
    definition["questions"][1]["show_if"] = {"question": "status", "answered": True}
    problems = problems_of(definition)
    assert "questions[0] (status): a single question needs 'options'" in problems
    assert "questions[2] (happiness): 'options' does not apply to a scale question" in problems


def test_scale_needs_min_below_max_and_both_bounds():
    definition = small_definition()
    definition["questions"][2].update(min=5, max=5)
    assert problems_of(definition) == ["questions[2] (happiness): a scale needs min < max (got min 5, max 5)"]

    del definition["questions"][2]["max"]
    assert problems_of(definition) == ["questions[2] (happiness): a scale question needs both 'min' and 'max'"]


def test_condition_values_must_be_options_of_the_question():
    definition = small_definition()
    definition["questions"][1]["show_if"] = {"question": "status", "any_of": ["employed", "retired"]}
    definition["questions"][2]["show_if"] = {"question": "status", "equals": "unknown"}
    assert problems_of(definition) == [
        "questions[1] (employer): show_if any_of uses \"retired\", which is not an option of 'status' "
        "(options: employed, seeking)",
        "questions[2] (happiness): show_if equals uses \"unknown\", which is not an option of 'status' "
        "(options: employed, seeking)",
    ]


def test_condition_values_on_a_scale_must_be_points_of_the_scale():
    definition = small_definition()
    definition["questions"].append({
        "id": "why", "type": "long_text", "label": text("Why?"),
        "show_if": {"question": "happiness", "any_of": [1, 2, 7]},
    })
    assert problems_of(definition) == ["questions[3] (why): show_if any_of uses 7, but 'happiness' is a scale from 1 to 5"]


def test_equals_on_a_multi_question_is_refused():
    definition = small_definition()
    definition["questions"][0]["type"] = "multi"
    definition["questions"][1]["show_if"] = {"question": "status", "equals": "employed"}
    assert problems_of(definition) == [
        "questions[1] (employer): show_if uses 'equals' on 'status', a multi question; use any_of or none_of"
    ]


def test_ids_used_by_the_form_itself_are_refused():
    definition = small_definition()
    definition["questions"][2]["id"] = "submit"
    assert problems_of(definition) == [
        "questions[2] (submit): the id 'submit' is reserved by the respondent form; choose another"
    ]


def test_every_problem_is_listed_in_the_message():
    definition = small_definition()
    definition["questions"][0]["options"][1]["value"] = "employed"
    definition["questions"][1]["show_if"] = {"question": "nope", "answered": True}
    definition["questions"][2].update(min=9, max=1)
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(definition)
    message = caught.value.message
    assert message.startswith("The questionnaire definition has 3 problems:")
    assert "questions[0] (status)" in message
    assert "questions[1] (employer)" in message
    assert "questions[2] (happiness)" in message


# --------------------------------------------------------------- schema checks

def test_structural_problems_say_where_and_what():
    definition = small_definition()
    del definition["questions"][0]["label"]["en"]
    definition["questions"][1]["lable"] = text("typo")
    definition["questions"][2]["type"] = "slider"
    definition["questions"][0]["options"][0]["claim"] = "lottery_win"
    definition["kind"] = "robot"
    problems = problems_of(definition)
    assert "kind: 'robot' is not allowed; use one of: alumnus, employee" in problems
    assert "questions[0] (status).label: missing 'en'" in problems
    assert "questions[1] (employer): unknown key 'lable' (check the spelling)" in problems
    assert any(p.startswith("questions[2] (happiness).type: 'slider' is not allowed") for p in problems)
    assert any(p.startswith("questions[0] (status).options[0].claim: 'lottery_win' is not allowed") for p in problems)


def test_bad_question_id_and_condition_shape():
    definition = small_definition()
    definition["questions"][1]["id"] = "Employer Name"
    definition["questions"][2]["show_if"] = {"question": "status"}
    problems = problems_of(definition)
    assert problems == [
        "questions[1] (Employer Name).id: a question id is a lowercase letter followed by lowercase letters, "
        "digits or underscores (at most 63 characters)",
        "questions[2] (happiness).show_if: a condition needs one test: any_of, none_of, equals or answered",
    ]


def test_not_a_mapping():
    with pytest.raises(ValidationFailed, match="must be a mapping"):
        validate_definition(["questions"])


# ---------------------------------------------------------------------- parsing

YAML_DEFINITION = """
slug: small
kind: alumnus
title: {en: Small, fr: Petit}
questions:
  - id: status
    type: single
    required: true
    label:
      en: What is your status?
      fr: Quelle est votre situation ?
    options:
      - {value: employed, label: {en: Employed, fr: En emploi}, claim: new_job}
      - {value: seeking, label: {en: Seeking, fr: En recherche}}
  - id: employer
    type: text
    label: {en: Employer, fr: Employeur}
    show_if: {question: status, any_of: [employed]}
"""


def test_yaml_is_accepted_by_file_name_or_by_content():
    by_name = parse_definition(YAML_DEFINITION.encode(), "small.yml")
    by_content = parse_definition(YAML_DEFINITION)
    assert by_name == by_content
    assert by_name["questions"][1]["show_if"] == {"question": "status", "any_of": ["employed"]}


def test_json_is_accepted_with_a_byte_order_mark():
    raw = "\ufeff".encode() + json.dumps(small_definition()).encode()
    assert parse_definition(raw, "small.json") == small_definition()


def test_yaml_problems_have_the_same_locations():
    broken = YAML_DEFINITION.replace("any_of: [employed]", "any_of: [retired]")
    with pytest.raises(ValidationFailed, match=r"questions\[1\] \(employer\): show_if any_of uses \"retired\""):
        parse_definition(broken, "small.yaml")


def test_broken_json_gives_the_line():
    with pytest.raises(ValidationFailed, match=r"not valid JSON: .*line 1"):
        parse_definition(b'{"slug": "x",, }', "broken.json")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"\xff\xfe\x00garbage",
        b"- just\n- a list\n",
        b"just a sentence",
        b"42",
        b"null",
        b"{{{{",
        b"key: [unclosed",
        b"a: &x [1]\nb: *x\n",
        b"slug: small\ncreated: 2024-01-01\n",
        b"slug: small\ncreated: 2024-13-45\n",
        b"slug: !!float abc\n",
        b"slug: !!python/object:os.system {}\n",
        b"1" * 5000,
        b'{"min": ' + b"9" * 5000 + b"}",
        b'{"slug": NaN}',
        b"[" * 100_000,
        b"{" * 100_000,
        b"- " * 100_000,
        b"x" * 300_000,
        "\u0000\u0001 binary in a str".encode(),
    ],
)
def test_garbage_gives_validation_failed_and_nothing_else(raw):
    with pytest.raises(ValidationFailed):
        parse_definition(raw)
    with pytest.raises(ValidationFailed):
        parse_definition(raw, "upload.yaml")


def test_random_bytes_never_crash():
    rng = random.Random(1234)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        with pytest.raises(ValidationFailed):
            parse_definition(raw, rng.choice([None, "q.json", "q.yaml", "q.txt"]))


def test_deeply_nested_conditions_are_refused():
    definition = small_definition()
    condition = {"question": "status", "answered": True}
    for _ in range(2000):
        condition = {"all": [condition]}
    definition["questions"][2]["show_if"] = condition
    with pytest.raises(ValidationFailed, match="nested too deeply"):
        validate_definition(definition)


def test_yaml_aliases_are_refused_with_an_explanation():
    with pytest.raises(ValidationFailed, match="aliases"):
        parse_definition(b"a: &x [1, 2]\nb: *x\n", "bomb.yaml")


# ------------------------------------------------------------------- versions

def test_same_slug_makes_version_2_and_identical_upload_reuses_it(app_ctx):
    first = add_questionnaire(small_definition())
    changed = small_definition()
    changed["title"] = text("Small, reworded")
    second = add_questionnaire(changed)
    again = add_questionnaire(copy.deepcopy(changed))
    db.session.commit()

    assert (first.version, second.version) == (1, 2)
    assert again.id == second.id
    assert count_versions("small") == 2
    assert second.title("en") == "Small, reworded"


def test_identical_key_order_does_not_matter(app_ctx):
    first = add_questionnaire(small_definition())
    reordered = json.loads(json.dumps(small_definition(), sort_keys=True))
    assert add_questionnaire(reordered).id == first.id


def test_going_back_to_an_older_definition_is_a_new_version(app_ctx):
    add_questionnaire(small_definition())
    changed = small_definition()
    changed["questions"].pop()
    add_questionnaire(changed)
    back = add_questionnaire(small_definition())
    assert back.version == 3


def test_an_invalid_definition_is_not_stored(app_ctx):
    definition = small_definition()
    definition["questions"][1]["show_if"]["question"] = "ghost"
    with pytest.raises(ValidationFailed):
        add_questionnaire(definition)
    assert count_versions() == 0


def test_stored_definition_is_a_copy(app_ctx):
    definition = small_definition()
    questionnaire = add_questionnaire(definition)
    definition["title"]["en"] = "changed afterwards"
    assert questionnaire.definition["title"]["en"] == "Small"


def test_latest_versions_lists_one_per_slug(app_ctx):
    add_questionnaire(small_definition())
    changed = small_definition()
    changed["title"] = text("v2")
    add_questionnaire(changed)
    other = small_definition()
    other["slug"] = "another"
    add_questionnaire(other)
    db.session.commit()
    assert [(q.slug, q.version) for q in latest_versions()] == [("another", 1), ("small", 2)]


def test_freezing_keeps_the_first_date(app_ctx):
    questionnaire = add_questionnaire(small_definition())
    assert questionnaire.frozen_at is None
    freeze_questionnaire(questionnaire)
    first = questionnaire.frozen_at
    assert first is not None
    freeze_questionnaire(questionnaire)
    db.session.commit()
    assert db.session.get(Questionnaire, questionnaire.id).frozen_at == first


def test_yaml_and_json_examples_in_the_docs_are_valid():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "questionnaires.md").read_text()
    yaml_block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    json_block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    from_yaml = parse_definition(yaml_block, "example.yaml")
    from_json = parse_definition(json_block, "example.json")
    assert from_yaml == from_json == yaml.safe_load(yaml_block)


def test_jsonschema_s_own_messages_are_reworded():
    definition = small_definition()
    definition["questions"][2]["min"] = "1"
    definition["questions"][0]["label"]["en"] = ""
    problems = problems_of(definition)
    assert 'questions[2] (happiness).min: "1" should be a number' in problems
    assert "questions[0] (status).label.en: must not be empty" in problems


def test_every_message_of_the_schema_is_translated(app):
    from flask_babel import force_locale

    from survey.questionnaires.services import SCHEMA_MESSAGES, SCHEMA_PATH

    def x_errors(node):
        if isinstance(node, dict):
            yield from node.get("x-errors", {}).values()
            for value in node.values():
                yield from x_errors(value)
        elif isinstance(node, list):
            for value in node:
                yield from x_errors(value)

    written = set(x_errors(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))))
    assert written and written <= set(SCHEMA_MESSAGES)
    definition = small_definition()
    definition["questions"][1]["id"] = "Employer Name"
    definition["questions"][2]["min"] = "1"
    with app.test_request_context(), force_locale("fr"):
        problems = [str(problem) for problem in problems_of(definition)]
    assert any("un identifiant de question" in problem for problem in problems), problems
    assert 'questions[2] (happiness).min\xa0: "1" devrait être un nombre' in problems, problems
