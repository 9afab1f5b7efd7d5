from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import (
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from exai_site.api import LogoutView
from exai_site.api_errors import api_not_found
from exai_site.throttling import AnonRateThrottle, LoginRateThrottle

# Browsers ask every page's site for one; without it each page load logs a 404.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#1d2733"/><path d="M4 4h8v2H6v1h5v2H6v1h6v2H4z" fill="#fff"/></svg>'
)


def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    # Password logins have their own, tighter limit per address.
    path(
        "api/auth/token/",
        TokenObtainPairView.as_view(throttle_classes=[LoginRateThrottle, AnonRateThrottle]),
        name="token-obtain",
    ),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("api/auth/token/verify/", TokenVerifyView.as_view(), name="token-verify"),
    # Logout: POST {"refresh": ...} blacklists that refresh token and revokes the access token sent with it.
    path("api/auth/logout/", LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]), name="api-docs"),
    path("", include("tools_app.urls")),
    path("", include("metrics_app.urls")),
    path("", include("errors_app.urls")),
    path("", include("files_app.urls")),
    # Last: any other URL under /api/ (or /mcp/…) is a JSON 404, in DEBUG too (where handler404 is not used).
    re_path(r"^(api/|mcp/)", api_not_found),
]

# Under /api/ and /mcp these answer in the one JSON error shape; elsewhere Django's pages.
handler400 = "exai_site.api_errors.bad_request"
handler404 = "exai_site.api_errors.not_found"
handler500 = "exai_site.api_errors.server_error"
