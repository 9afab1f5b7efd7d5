"""The caller's own call history as tools, registered into the core's registry by MetricsAppConfig.ready()."""

from metrics_app.tools.activity import ActivityTool
from metrics_app.tools.toolcall_log_tail import ToolCallLogTailTool
from tools_app.tools.base import Tool

TOOLS: list[Tool] = [ActivityTool(), ToolCallLogTailTool()]
