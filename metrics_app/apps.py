from django.apps import AppConfig


class MetricsAppConfig(AppConfig):
    name = "metrics_app"
    verbose_name = "Metrics"

    def ready(self) -> None:
        from metrics_app.recorder import flush_on_shutdown
        from tools_app import lifecycle

        lifecycle.on_shutdown(flush_on_shutdown)  # a clean stop loses no sample
