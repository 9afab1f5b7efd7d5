from django.apps import AppConfig


class ErrorsAppConfig(AppConfig):
    name = "errors_app"
    verbose_name = "Errors"
