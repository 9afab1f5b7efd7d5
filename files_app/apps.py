from django.apps import AppConfig


class FilesAppConfig(AppConfig):
    name = "files_app"
    verbose_name = "Files"

    def ready(self) -> None:
        from files_app import resources, signals  # noqa: F401  (connects the receivers)

        resources.register()  # the caller's files as MCP resources
