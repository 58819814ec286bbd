"""``GET /api/v1/fps/banks``: the Faster Payments members a payout to a phone can go to
(PROTOCOL §9), the API's one GET.

Signed like every call: the PHP SDK sends the body ``[]``, another client may send none and
sign the empty bytes; the signature is verified over the bytes received either way.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from payout131.directory.fps import FpsDirectory
from payout131.errors import ApiError, InvalidRequest
from payout131.protocol.requests import parse_body
from payout131.protocol.wire import dumps
from payout131.server.bodies import read_body
from payout131.server.partner_api import JSON, PartnerApi, error_response, unexpected

__all__ = ["FpsBanks"]


class FpsBanks:
    # every method reaches it, so that all but GET (and HEAD) get its own 405
    METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def __init__(self, partner_api: PartnerApi, members: FpsDirectory) -> None:
        self.partner_api = partner_api
        self.answer = dumps(
            {"status": "ok", "banks": [member.as_json() for member in members.members()]}
        )

    async def __call__(self, request: Request) -> Response:
        try:
            if request.method not in ("GET", "HEAD"):  # HEAD: a GET whose body is dropped
                refused = InvalidRequest(f"{request.method} {request.url.path}: use GET")
                return Response(
                    dumps(refused.envelope()),
                    status_code=405,
                    media_type=JSON,
                    headers={"Allow": "GET, HEAD"},
                )
            conf = self.partner_api
            raw = await read_body(request, conf.max_body_bytes, conf.body_timeout_s)
            await conf.authenticate(request.headers, raw)
            parse_body(raw)  # JSON if anything: ``[]``, ``{}`` or nothing
            return Response(self.answer, media_type=JSON)
        except ApiError as exc:
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 (answered as the partner API answers)
            return unexpected(request, exc)
