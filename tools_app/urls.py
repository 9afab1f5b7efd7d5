from django.urls import path

from tools_app import api, mcp_http

urlpatterns = [
    path("api/tools/", api.ToolListView.as_view(), name="tool-list"),
    path("api/tools/<str:name>/call/", api.ToolCallView.as_view(), name="tool-call"),
    path("mcp", mcp_http.mcp_endpoint, name="mcp"),
]
