from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.utils.html import format_html, format_html_join

USERNAME_RULES = (
    "Letters, digits and @ . + - _ only, with at least one letter; up to 150 characters. Capitals count when you "
    "log in, but not for telling people apart: once “alice” is taken, so is “Alice”."
)


class RegistrationForm(UserCreationForm):
    """Sign-up with every rule in view and each error under the field it is about."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.help_text = USERNAME_RULES
        username.widget.attrs.update({"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"})
        # Shown as a list beside the field, not behind a link: people read them before choosing.
        rules = password_validation.password_validators_help_texts()
        self.fields["password1"].help_text = format_html(
            '<ul class="rules">{}</ul>', format_html_join("", "<li>{}</li>", ((rule,) for rule in rules))
        )
        self.fields["password2"].help_text = "Type the same password again."

    def clean_username(self) -> str:
        username = self.cleaned_data.get("username", "")
        # Usernames stand in addresses next to numeric recording ids; an all-digit name would read as an id.
        if username and username.isdigit():
            raise forms.ValidationError("A username must contain at least one letter.")
        taken = User.objects.filter(username__iexact=username).values_list("username", flat=True).first()
        if taken == username:
            raise forms.ValidationError(f"“{username}” is already taken. Choose another name.")
        if taken is not None:
            raise forms.ValidationError(
                f"“{username}” is taken by “{taken}”: names that differ only in capitals count as the same "
                "name here. Choose another name."
            )
        return username

    # django-stubs 5.2 lack SetPasswordMixin among UserCreationForm's bases, hence the ignore.
    def validate_password_for_user(self, user: User, password_field_name: str = "password1") -> None:
        # The rules are about the password itself, so their errors go under it, not under its confirmation.
        super().validate_password_for_user(user, password_field_name=password_field_name)  # type: ignore[misc]

    def full_clean(self) -> None:
        super().full_clean()
        # A form sent back for its username keeps the passwords typed; once a password is wrong both are
        # typed again, since they must match.
        keep_passwords = not {"password1", "password2"} & self.errors.keys()
        for name in ("password1", "password2"):
            self.fields[name].widget.render_value = keep_passwords
        # Screen readers read a field's errors along with its rules when the field is focused.
        for name in self.errors.keys() & self.fields.keys():
            field_id = self[name].auto_id
            self.fields[name].widget.attrs["aria-describedby"] = f"{field_id}_errors {field_id}_helptext"
