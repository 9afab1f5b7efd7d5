from django.urls import path

from metrics_app import health

urlpatterns = [
    path("health/", health.health, name="health"),
    path("health/live/", health.live, name="health-live"),
    path("health/ready/", health.ready, name="health-ready"),
    path("health/websocket/", health.websocket_health, name="health-websocket"),
]
