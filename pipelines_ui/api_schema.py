"""The OpenAPI schema: drf-spectacular's, plus the error responses every operation can give.

Kept apart from api_base: DRF resolves the schema class lazily, while the permission classes
load with DRF itself, before drf-spectacular can be imported.
"""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorItemSerializer(serializers.Serializer):
    node = serializers.CharField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    detail = serializers.CharField()
    errors = ErrorItemSerializer(many=True)


class ApiSchema(AutoSchema):
    """drf-spectacular's schema, plus the error responses every operation can give."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["400", "401", "403", "503"]  # 400: a bad body or query parameter
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["409", "413", "415"]
        if "{" in self.path:
            codes.append("404")
        if self.method == "DELETE":
            codes.append("409")
        if self.method == "POST" and self.path.endswith("/runs/"):
            codes.append("429")  # run triggers are rate-limited (runs/limits.py)
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        return responses
