from django.urls import path

from tools_app.consumers import ExaiConsumer, McpConsumer

websocket_urlpatterns = [
    path("ws", ExaiConsumer.as_asgi()),
    path("mcp", McpConsumer.as_asgi()),
]
