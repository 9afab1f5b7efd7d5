from django.apps import AppConfig


class ToolsAppConfig(AppConfig):
    name = "tools_app"
    verbose_name = "AI tools"

    def ready(self) -> None:
        from tools_app import checks, lifecycle, thread_resources  # noqa: F401  (checks registers the system checks)
        from tools_app.housekeeping import start_housekeeping
        from tools_app.turns import flush_turns

        thread_resources.register()  # the caller's threads as MCP resources
        lifecycle.on_new_loop(start_housekeeping)
        lifecycle.on_shutdown(flush_turns)  # a clean stop keeps every answered turn
