"""Provider metadata: makes ``airflow-mlops`` a provider Airflow's ProvidersManager discovers.

Registered through the ``apache_airflow_provider`` entry point (``provider_info =
"mlops_airflow.provider:get_provider_info"``), it adds the ``azure_ml`` connection type with
its form (``conn-fields`` and ``ui-field-behaviour``, which Airflow >= 3.2 reads here without
importing the hook). Importing this module is cheap: no Airflow, no Azure SDK.
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "azure_ml"

# Declarative connection form (Airflow >= 3.2 reads these from the provider info without importing
# the hook; AzureMLHook's get_ui_field_behaviour/get_connection_form_widgets serve older versions).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {"label": "Tenant ID", "schema": {"type": ["string", "null"]}},
    "subscription_id": {"label": "Subscription ID", "schema": {"type": ["string", "null"]}},
    "resource_group": {"label": "Resource group", "schema": {"type": ["string", "null"]}},
    "workspace": {"label": "Azure ML workspace", "schema": {"type": ["string", "null"]}},
    # clouds other than Azure's public one (see mlops_airflow.hooks.azureml)
    "api_endpoint": {
        "label": "ARM endpoint (sovereign clouds; default https://management.azure.com)",
        "schema": {"type": ["string", "null"]},
    },
    "authority": {
        "label": "Entra ID authority host (sovereign clouds; default login.microsoftonline.com)",
        "schema": {"type": ["string", "null"]},
    },
    "disable_instance_discovery": {
        "label": "Disable Entra instance discovery (Azure Stack Hub, private clouds)",
        "schema": {"type": ["boolean", "null"]},
    },
}
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["host", "port", "schema"],
    "relabeling": {"login": "Client ID", "password": "Client secret"},
    "placeholders": {
        "login": "application (client) id of the service principal",
        "password": "client secret of the service principal",
        "extra": '{"tenant_id": "...", "subscription_id": "...", "resource_group": "...", "workspace": "..."}',
    },
}


def get_provider_info() -> dict[str, Any]:
    """The provider info dict (validated against ``airflow/provider_info.schema.json`` in the tests)."""
    behaviour = {
        "hidden-fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }
    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": "One YAML per model -> Airflow DAGs for the ML lifecycle; Azure ML hook, "
        "deferrable command-job operator and trigger.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Azure Machine Learning",
                "external-doc-url": "https://learn.microsoft.com/azure/machine-learning/",
                "tags": ["azure"],
            }
        ],
        "hooks": [
            {"integration-name": "Azure Machine Learning", "python-modules": ["mlops_airflow.hooks.azureml"]}
        ],
        "operators": [
            {
                "integration-name": "Azure Machine Learning",
                "python-modules": ["mlops_airflow.operators.azureml"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Azure Machine Learning",
                "python-modules": ["mlops_airflow.triggers.azureml"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "mlops_airflow.hooks.azureml.AzureMLHook",
                "hook-name": "Azure ML",
                "connection-type": CONN_TYPE,
                "ui-field-behaviour": behaviour,
                "conn-fields": {name: dict(field) for name, field in CONN_FIELDS.items()},
            }
        ],
    }
