"""ASGI entry point: HTTP to Django, WebSockets through one checked way in to the apps' consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ChannelNameRouter, ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from errors_app.consumers import BackgroundWorker  # noqa: E402
from errors_app.routing import websocket_urlpatterns as errors_websockets  # noqa: E402
from exai_site import daphne_limits  # noqa: E402
from exai_site.sockets import WebSocketEntry  # noqa: E402
from metrics_app.routing import websocket_urlpatterns as metrics_websockets  # noqa: E402
from tools_app.routing import websocket_urlpatterns as tools_websockets  # noqa: E402

daphne_limits.install()

application = ProtocolTypeRouter(
    {
        # The admin's and the dashboard's static files (the chart library is vendored, so the
        # page works with no internet) are served by the server itself, under daphne too.
        "http": ASGIStaticFilesHandler(django_asgi_app),
        # A page on a foreign origin is refused before its token is even looked at; sockets are
        # bounded in number and, until they authenticate, in time and frame size (exai_site/sockets.py).
        "websocket": WebSocketEntry([*tools_websockets, *errors_websockets, *metrics_websockets]),
        # `manage.py runworker exai.background` (with Redis): AI investigations off the request path.
        "channel": ChannelNameRouter({"exai.background": BackgroundWorker.as_asgi()}),
    }
)
