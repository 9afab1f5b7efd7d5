from django.urls import path

from errors_app import api

urlpatterns = [
    path("api/errors/", api.ErrorListView.as_view(), name="error-list"),
    path("api/errors/<int:error_id>/", api.ErrorDetailView.as_view(), name="error-detail"),
]
