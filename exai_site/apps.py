from django.apps import AppConfig


class ExaiSiteConfig(AppConfig):
    name = "exai_site"
    verbose_name = "EXAI site"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from exai_site import checks, schema  # noqa: F401  (registers the system checks and the OpenAPI auth scheme)
        from exai_site.connections import close_request_connections

        request_finished.connect(close_request_connections, dispatch_uid="exai-close-request-connections")
