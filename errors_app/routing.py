from django.urls import path

from errors_app.consumers import ErrorFeedConsumer

websocket_urlpatterns = [path("ws/errors", ErrorFeedConsumer.as_asgi())]
