from django import forms
from django.contrib.auth.forms import UserCreationForm


class RegistrationForm(UserCreationForm):
    def clean_username(self) -> str:
        username = super().clean_username()
        # `/api/recordings/<id>/` and `/api/recordings/<username>/` share a URL shape; ids are all digits.
        if username and username.isdigit():
            raise forms.ValidationError("A username must contain at least one letter.")
        return username
