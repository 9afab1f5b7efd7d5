"""`secaudit`: a security audit step by step, then an expert security assessment."""

from tools_app.tools.workflow import WorkflowTool


class SecAuditTool(WorkflowTool):
    name = "secaudit"
    description = (
        "Audit code for security (OWASP, auth, secrets, input handling) step by step, then get an expert assessment."
    )
    system_prompt = (
        "You are an application security auditor. From the investigation and files below, report "
        "vulnerabilities with severity, an attack scenario, the affected code and a concrete remediation; "
        "consider the threat level, focus and compliance requirements given. No speculation without evidence. "
    )
    extra_properties = {
        "threat_level": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
        "audit_focus": {
            "type": "string",
            "enum": ["owasp", "compliance", "infrastructure", "dependencies", "comprehensive"],
        },
        "compliance_requirements": {"type": "array", "items": {"type": "string"}},
    }
    first_actions = [
        "Identify the application's assets, entry points and trust boundaries.",
        "List authentication, authorisation and data-handling code in relevant_files.",
    ]
    middle_actions = [
        "Check input validation, injection, authn/authz and secrets handling; record issues with severity.",
        "Check dependencies and configuration for known weaknesses.",
    ]
    expert_request = "Give the security assessment: confirmed vulnerabilities, severity, remediation."
