from django.urls import path

from files_app import api

urlpatterns = [
    path("api/files/", api.FileListView.as_view(), name="file-list"),
    path("api/files/by-hash/", api.FileByHashView.as_view(), name="file-by-hash"),
    path("api/files/<uuid:file_id>/", api.FileDetailView.as_view(), name="file-detail"),
    path("api/files/<uuid:file_id>/content/", api.FileContentView.as_view(), name="file-content"),
]
