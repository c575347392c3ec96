"""The API's own error types (kept apart from core/api.py, which imports DRF's views: the parser
raises them while DRF is still loading its settings)."""

from rest_framework import exceptions, status


class Conflict(exceptions.APIException):
    """A state conflict, e.g. sending a campaign that is already sent."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable; retry shortly."
    default_code = "unavailable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"
