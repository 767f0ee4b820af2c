"""Admin pages for audiences: who is in them, and importing a CSV."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice

from survey.audiences.models import Stakeholder
from survey.audiences.services import import_audience
from survey.core.authorisation import allowed
from survey.core.pagination import paginate
from survey.extensions import db

bp = Blueprint("audiences", __name__, template_folder="templates", url_prefix="/admin/audiences")

PAGE_SIZE = 50


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()],
                     description=_l("Any delimiter, UTF-8 or Windows-1252; French or English column names."))
    kind = RadioField(_l("These people are"), choices=[SelectChoice("alumnus", _l("Alumni")), SelectChoice("employee", _l("Employees"))],
                      default="alumnus")


@bp.route("/", methods=["GET", "POST"])
@allowed("import", "audience")
def index():
    form = ImportForm()
    report = None
    status = 200
    if form.validate_on_submit():
        report = import_audience(form.file.data.stream, form.kind.data)  # read as it goes
        if report.unreadable:
            # Not one row could be read (not a CSV, no email column…): an error about the
            # file, not an import that merely rejected a line.
            db.session.rollback()
            form.file.errors.append(_("This file cannot be imported: %(reason)s. Nothing was changed.",
                                      reason=report.unreadable))
            report, status = None, 422
        else:
            db.session.commit()
    people = paginate(select(Stakeholder).order_by(Stakeholder.id), PAGE_SIZE)
    totals = dict(db.session.execute(select(Stakeholder.kind, func.count()).group_by(Stakeholder.kind)).all())
    return render_template("audiences/index.html", form=form, report=report, people=people, totals=totals), status
