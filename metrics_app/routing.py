from django.urls import path

from metrics_app.consumers import DashboardConsumer

websocket_urlpatterns = [path("ws/dashboard", DashboardConsumer.as_asgi())]
