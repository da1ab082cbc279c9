from django import forms
from django.contrib.auth.forms import UserCreationForm


class RegistrationForm(UserCreationForm):
    def clean_username(self) -> str:
        username = super().clean_username()
        # Usernames stand in addresses next to numeric recording ids; an all-digit name would read as an id.
        if username and username.isdigit():
            raise forms.ValidationError("A username must contain at least one letter.")
        return username
