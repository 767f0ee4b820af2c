"""Login, password confirmation and password change forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1000)])
    submit = SubmitField(_l("Log in"))


class ConfirmPasswordForm(FlaskForm):
    """A logged-in user proves again it is them, before a decision that needs a fresh login."""

    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1000)])
    submit = SubmitField(_l("Confirm"))


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=1000)])
    new_password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(max=1000)],
        description=_l("At least 12 characters; not a common password. A few unrelated words make a good one."))
    confirm_password = PasswordField(
        _l("New password, again"),
        validators=[DataRequired(), EqualTo("new_password", message=_l("The two new passwords are not the same."))])
    submit = SubmitField(_l("Change password"))
