from django.apps import AppConfig


class FilesAppConfig(AppConfig):
    name = "files_app"
    verbose_name = "Files"

    def ready(self) -> None:
        from files_app import resources, signals  # noqa: F401  (connects the receivers)
        from files_app.attachments import UploadedFiles
        from files_app.services import files_status
        from files_app.tools import TOOLS
        from tools_app.attachments import provide_file_store
        from tools_app.health import provide_status_part
        from tools_app.tools import register_tools

        resources.register()  # the caller's files as MCP resources
        provide_file_store(UploadedFiles())  # the chat and workflow tools' `files` and `images`
        register_tools(TOOLS)
        provide_status_part("files", files_status)  # on the dashboard
