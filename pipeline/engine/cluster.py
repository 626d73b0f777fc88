"""Joining an existing Ray cluster (`RAY_ADDRESS`): a clear one-line error, within seconds,
where Ray would retry for ~20 s and end in its own traceback.

Ray 2.60's `ray start --head` turns token authentication on: a client must then run with
`RAY_AUTH_MODE=token` and the cluster's token (in `~/.ray/auth_token`, the file named by
`RAY_AUTH_TOKEN_PATH`, or `RAY_AUTH_TOKEN`). Before `ray.init` joins, one gRPC call to the head's
GCS (its health check, answered in milliseconds) tells whether the head is there and whether
it takes this process's token; docs/SCALE.md, "Running on a Ray cluster", says what to set.
"""
from __future__ import annotations

import os
from pathlib import Path

PROBE_TIMEOUT_S = 5.0


class ClusterError(RuntimeError):
    """The cluster at RAY_ADDRESS cannot be joined as configured; the message says what to set."""


def _token() -> str | None:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.is_file() else None


def check_cluster_auth(address: str, timeout: float = PROBE_TIMEOUT_S, token: str | None = None) -> None:
    """Raise ClusterError when the head at `address` ("host:port") does not answer or refuses
    this process's authentication settings (RAY_AUTH_MODE=token and its token; or `token`).
    Addresses Ray resolves itself ("auto", "local", "ray://" clients) are left to Ray."""
    if address in ("auto", "local") or "://" in address:
        return
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    token_mode = token is not None or os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    metadata: tuple[tuple[str, str], ...] = ()
    if token_mode:
        token = token or _token()
        if not token:
            raise ClusterError("RAY_AUTH_MODE=token but no token: put the cluster's token (`ray get-auth-token` on the "
                               "head) in ~/.ray/auth_token, or set RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
        metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.CheckAlive(gcs_service_pb2.CheckAliveRequest(), timeout=timeout, metadata=metadata)
        except grpc.RpcError as err:
            code = err.code()
            if code == grpc.StatusCode.UNAUTHENTICATED and token_mode:
                raise ClusterError(f"the Ray cluster at {address} (RAY_ADDRESS) refuses this token: use the head's "
                                   "(`ray get-auth-token` there) in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token") from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise ClusterError(f"the Ray cluster at {address} (RAY_ADDRESS) uses token authentication: set "
                                   "RAY_AUTH_MODE=token, with the head's token (`ray get-auth-token` there) in "
                                   "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ClusterError(f"no Ray cluster answers at {address} (RAY_ADDRESS) within {timeout:g} s: start one "
                                   "with `ray start --head --port=PORT`, or unset RAY_ADDRESS to run locally") from None
            # anything else (an older head without this call...): let ray.init decide
