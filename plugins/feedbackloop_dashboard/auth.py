"""Authentication of the dashboard's routes with Airflow's own auth manager.

An Airflow FastAPI plugin is served without any authentication unless it adds its own, so
every route of the dashboard depends on :func:`require_dashboard_user`. It reuses the core
API's ``get_user`` (the same precedence as Airflow's REST API: an ``Authorization: Bearer``
JWT wins, else the ``_token`` cookie the Airflow UI sets after login), validated by the
configured auth manager (signature, expiry, revocation), then asks the auth manager whether
the user may see the Airflow website, the permission every UI user has.

Outcomes: no token 401, expired token 401, invalid or revoked token 403, a user without
website access 403.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="An Airflow JWT (POST /auth/token)")


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager, init_auth_manager

    try:
        return get_auth_manager()
    except RuntimeError:
        # Mounted outside the api-server (e.g. a test client): build the configured one.
        return init_auth_manager()


async def require_dashboard_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Any:
    """The authenticated Airflow user, or HTTP 401 / 403.

    Raises:
        HTTPException: 401 without a token or with an expired one, 403 for an invalid or
            revoked token or a user the auth manager does not allow to see the website.
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user

    manager = _auth_manager()
    user = await get_user(request, _oauth_token=None, bearer_credentials=credentials)
    if not manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
    return user


def login_url(next_url: str) -> str | None:
    """Where a browser signs in to Airflow and comes back to ``next_url`` (None if unknown)."""
    try:
        return str(_auth_manager().get_url_login(next_url=next_url))
    except Exception:  # noqa: BLE001 - a login link is a convenience on an error page
        return None
