from django.apps import AppConfig


class ErrorsAppConfig(AppConfig):
    name = "errors_app"
    verbose_name = "Errors"

    def ready(self) -> None:
        from errors_app import capture
        from errors_app.services import errors_wanting_a_look
        from tools_app.health import provide_status_part

        capture.install()
        provide_status_part("errors", errors_wanting_a_look)  # on the dashboard
