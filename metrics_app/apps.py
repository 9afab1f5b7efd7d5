from django.apps import AppConfig


class MetricsAppConfig(AppConfig):
    name = "metrics_app"
    verbose_name = "Metrics"

    def ready(self) -> None:
        from metrics_app.recorder import flush_on_shutdown, record_call
        from metrics_app.spend import spent_since
        from metrics_app.tools import TOOLS
        from tools_app import lifecycle, observers
        from tools_app.budgets import provide_spend_source
        from tools_app.tools import register_tools

        register_tools(TOOLS)
        provide_spend_source(spent_since)  # budgets start their counters from the recorded spend
        observers.on_call(record_call)  # one latency sample per call the core finishes
        lifecycle.on_shutdown(flush_on_shutdown)  # a clean stop loses no sample
