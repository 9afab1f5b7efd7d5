from django.apps import AppConfig


class FilesAppConfig(AppConfig):
    name = "files_app"
    verbose_name = "Files"

    def ready(self) -> None:
        from files_app import signals  # noqa: F401  (connects the reference-count receiver)
