from django.apps import AppConfig


class ExaiSiteConfig(AppConfig):
    name = "exai_site"
    verbose_name = "EXAI site"

    def ready(self) -> None:
        from exai_site import checks, schema  # noqa: F401  (registers the system checks and the OpenAPI auth scheme)
