"""`health`: throttle use, circuit breakers and providers, as the `health` op shows them."""

from tools_app.tools.status import StatusTool


class HealthTool(StatusTool):
    name = "health"
    profile = "full"
    description = "Throttle slots in use and waiting, circuit breaker states and configured providers."
