"""Admin pages for questionnaires: list versions, upload a definition, preview it."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import TextAreaField
from wtforms.validators import Length, Optional

from survey.accounts.access import role_required
from survey.core.errors import ValidationFailed
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.questionnaires.services import add_questionnaire, parse_definition

bp = Blueprint("questionnaires", __name__, template_folder="templates", url_prefix="/admin/questionnaires")


class UploadForm(FlaskForm):
    file = FileField(_l("Definition file (JSON or YAML)"))
    text = TextAreaField(_l("…or paste the definition"), validators=[Optional(), Length(max=500_000)])


@bp.route("/", methods=["GET", "POST"])
@role_required("admin")
def index():
    form = UploadForm()
    if form.validate_on_submit():
        upload = form.file.data
        raw, name = (upload.read(500_001), upload.filename) if upload else ((form.text.data or ""), None)
        try:
            if not raw:
                raise ValidationFailed(_("Choose a file or paste a definition."))
            if len(raw) > 500_000:
                raise ValidationFailed(_("This definition is too large (500 kB at most)."))
            questionnaire = add_questionnaire(parse_definition(raw, name))
        except ValidationFailed as exc:
            form.text.errors.append(exc.message)
        else:
            db.session.commit()
            flash(_("Saved as %(slug)s version %(version)d.", slug=questionnaire.slug,
                    version=questionnaire.version), "success")
            return redirect(url_for("questionnaires.detail", questionnaire_id=questionnaire.id))
    questionnaires = db.session.scalars(
        select(Questionnaire).order_by(Questionnaire.slug, Questionnaire.version.desc())
    ).all()
    return render_template("questionnaires/index.html", questionnaires=questionnaires, form=form)


@bp.route("/<int:questionnaire_id>")
@role_required("admin")
def detail(questionnaire_id: int):
    from flask_babel import get_locale

    from survey.respond.forms import build_form

    questionnaire = db.get_or_404(Questionnaire, questionnaire_id)
    locale = str(get_locale())
    form = build_form(questionnaire.definition, locale)
    return render_template("questionnaires/detail.html", questionnaire=questionnaire, form=form,
                           definition=questionnaire.definition, locale=locale)
