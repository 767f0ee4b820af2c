"""Admin pages for questionnaires: list versions, upload a definition, preview it, then save it."""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from survey.core.authorisation import allowed
from survey.core.errors import ValidationFailed
from survey.core.pagination import paginate
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.questionnaires.services import add_questionnaire, parse_definition

bp = Blueprint("questionnaires", __name__, template_folder="templates", url_prefix="/admin/questionnaires")

PAGE_SIZE = 50
MAX_BYTES = 500_000


class UploadForm(FlaskForm):
    file = FileField(_l("Definition file (JSON or YAML)"))
    text = TextAreaField(_l("…or paste the definition"), validators=[Optional(), Length(max=500_000)])


class SaveForm(FlaskForm):
    """The previewed definition, sent back to be saved (parsed and checked again)."""
    definition = HiddenField(validators=[DataRequired(), Length(max=2_000_000)])


def _latest(slug: str) -> Questionnaire | None:
    return db.session.scalars(select(Questionnaire).where(Questionnaire.slug == slug)
                              .order_by(Questionnaire.version.desc()).limit(1)).first()


def _list(form: UploadForm):
    questionnaires = paginate(select(Questionnaire).order_by(Questionnaire.slug, Questionnaire.version.desc()),
                              PAGE_SIZE)
    return render_template("questionnaires/index.html", questionnaires=questionnaires, form=form)


@bp.route("/", methods=["GET", "POST"])
@allowed("write", "questionnaire")
def index():
    """The versions, and the upload form; an upload is previewed, not saved yet."""
    form = UploadForm()
    if not form.validate_on_submit():
        return _list(form)
    upload = form.file.data
    raw, name = (upload.read(MAX_BYTES + 1), upload.filename) if upload else ((form.text.data or ""), None)
    try:
        if not raw:
            raise ValidationFailed(_("Choose a file or paste a definition."))
        if len(raw) > MAX_BYTES:
            raise ValidationFailed(_("This definition is too large (500 kB at most)."))
        definition = parse_definition(raw, name)
    except ValidationFailed as exc:
        form.text.errors.append(exc.message)
        return _list(form)
    latest = _latest(definition["slug"])
    unchanged = latest is not None and latest.definition == definition
    save = SaveForm(definition=json.dumps(definition, ensure_ascii=False))
    return render_template("questionnaires/preview.html", definition=definition, save=save, latest=latest,
                           unchanged=unchanged, version=(latest.version + 1) if latest else 1,
                           **_previews(definition))


@bp.route("/save", methods=["POST"])
@allowed("write", "questionnaire")
def save():
    """Store the definition previewed (it comes back from the browser: checked again)."""
    form = SaveForm()
    try:
        if not form.validate_on_submit():
            raise ValidationFailed(_("Nothing to save: upload the definition again."))
        questionnaire = add_questionnaire(parse_definition(form.definition.data))
    except ValidationFailed as exc:
        db.session.rollback()
        upload = UploadForm(formdata=None)
        upload.text.errors = [exc.message]
        return _list(upload), 422
    db.session.commit()
    flash(_("Saved as %(slug)s version %(version)d.", slug=questionnaire.slug,
            version=questionnaire.version), "success")
    return redirect(url_for("questionnaires.detail", questionnaire_id=questionnaire.id))


def _previews(definition: dict) -> dict:
    """The form as respondents see it, in the page's language and in the other one."""
    from survey.respond.forms import build_form

    locale = str(get_locale())
    other = "en" if locale == "fr" else "fr"
    return {"locale": locale, "form": build_form(definition, locale),
            "other_locale": other, "other_form": build_form(definition, other)}


@bp.route("/<int:questionnaire_id>")
@allowed("read", "questionnaire")
def detail(questionnaire_id: int):
    questionnaire = db.get_or_404(Questionnaire, questionnaire_id)
    return render_template("questionnaires/detail.html", questionnaire=questionnaire,
                           definition=questionnaire.definition, **_previews(questionnaire.definition))


@bp.app_template_filter("language_name")
def language_name(code: str) -> str:
    """"fr" → "French" on an English page, "français" on a French one."""
    from babel import Locale

    return Locale.parse(code).get_display_name(get_locale()) or code
