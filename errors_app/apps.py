from django.apps import AppConfig


class ErrorsAppConfig(AppConfig):
    name = "errors_app"
    verbose_name = "Errors"

    def ready(self) -> None:
        from errors_app import capture

        capture.install()
