from django.urls import path

from metrics_app import api, health, views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", health.health, name="health"),
    path("health/live/", health.live, name="health-live"),
    path("health/ready/", health.ready, name="health-ready"),
    path("health/websocket/", health.websocket_health, name="health-websocket"),
    path("api/metrics/summary/", api.MetricsSummaryView.as_view(), name="metrics-summary"),
    path("api/metrics/spend/", api.SpendView.as_view(), name="metrics-spend"),
    path("metrics", views.prometheus_metrics, name="prometheus"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
