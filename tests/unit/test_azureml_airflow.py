"""The Airflow side of Azure ML: connection form, provider info, trigger, deferrable operator.

No network: the hook's sessions are the recording fake of the contract tests (which validates
every request and canned response against the API description), and the connection comes from
``AIRFLOW_CONN_AZURE_ML_TEST``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_azureml import Recorder, not_found

pytestmark = pytest.mark.unit

SUB, RG, WS = "sub-1", "rg-ml", "ws-ml"
JOB = "train-20260105-t1"
JOB_PATH = f"jobs/{JOB}"
CONN_EXTRAS = (
    "tenant_id",
    "subscription_id",
    "resource_group",
    "workspace",
    "api_endpoint",
    "authority",
    "disable_instance_discovery",
)
CONN = {
    "conn_type": "azure_ml",
    "login": "client-id-123",
    "password": "client-secret-123",
    "extra": {"tenant_id": "tenant-123", "subscription_id": SUB, "resource_group": RG, "workspace": WS},
}


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The connection from the environment; every session the hook builds is the recorder."""
    from mlops_airflow.hooks.azureml import AzureMLHook

    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_TEST", json.dumps(CONN))
    recorder = Recorder()
    scopes: list[str] = []

    def get_session(self: AzureMLHook, scope: str | None = None) -> Recorder:
        scopes.append(scope or self.arm_scope)
        return recorder

    monkeypatch.setattr(AzureMLHook, "get_session", get_session)
    recorder.scopes = scopes  # type: ignore[attr-defined]
    return recorder


BODY = {
    "properties": {
        "jobType": "Command",
        "command": "python -c 1",
        "environmentId": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
        f"/workspaces/{WS}/environments/mlops-train/versions/3",
    }
}


def job(status: str, error: str | None = None) -> dict[str, Any]:
    """The job as ARM returns it; a failure's text is on a job service (the resource has no error field)."""
    services: dict[str, Any] = {
        "Studio": {"jobServiceType": "Studio", "endpoint": "https://ml.azure.com/runs/x"}
    }
    if error:
        services["Tracking"] = {"jobServiceType": "Tracking", "errorMessage": error}
    return {"name": JOB, "properties": {**BODY["properties"], "status": status, "services": services}}


def collect(trigger: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(run())


# -- connection type and provider info ------------------------------------------------------------


def test_connection_form_relabels_and_hides_fields() -> None:
    from mlops_airflow.hooks.azureml import AzureMLHook

    behaviour = AzureMLHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client secret"}
    assert set(behaviour["hidden_fields"]) == {"host", "port", "schema"}
    assert (AzureMLHook.conn_type, AzureMLHook.conn_name_attr) == ("azure_ml", "azure_ml_conn_id")
    assert AzureMLHook.default_conn_name == "azure_ml_default" and AzureMLHook.hook_name == "Azure ML"


def test_connection_form_widgets() -> None:
    # wtforms and flask_appbuilder come with the FAB provider (in the lock): never skipped
    from wtforms import BooleanField, StringField

    from mlops_airflow.hooks.azureml import AzureMLHook

    widgets = AzureMLHook.get_connection_form_widgets()
    assert set(widgets) == {*CONN_EXTRAS}
    assert widgets["disable_instance_discovery"].field_class is BooleanField
    assert widgets["authority"].field_class is StringField


def test_provider_info_is_valid_for_the_providers_manager() -> None:
    import airflow
    import jsonschema

    from mlops_airflow.provider import get_provider_info

    info = get_provider_info()
    airflow_dir = Path(airflow.__file__).parent
    jsonschema.validate(info, json.loads((airflow_dir / "provider_info.schema.json").read_text()))
    (conn,) = info["connection-types"]
    assert (
        conn["hook-class-name"] == "mlops_airflow.hooks.azureml.AzureMLHook"
        and conn["connection-type"] == "azure_ml"
    )
    # the form metadata in the shape ProvidersManager._add_customized_fields turns it into
    behaviour = conn["ui-field-behaviour"]
    customized = {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    schema = json.loads((airflow_dir / "customized_form_field_behaviours.schema.json").read_text())
    jsonschema.validate(customized, schema)
    assert set(conn["conn-fields"]) == {*CONN_EXTRAS}
    # the hook class named there is importable and declares the same connection type
    from airflow.sdk.module_loading import import_string

    assert import_string(conn["hook-class-name"]).conn_type == conn["connection-type"]


def test_hook_builds_the_workspace_client_from_the_connection(rec: Recorder) -> None:
    from mlops_airflow.hooks.azureml import ARM_SCOPE, MONITOR_SCOPE, AzureMLHook

    hook = AzureMLHook("azure_ml_test", workspace="other-ws")
    client = hook.get_client()
    assert (client.subscription_id, client.resource_group, client.workspace) == (SUB, RG, "other-ws")
    hook.clients("monitor")
    assert rec.scopes == [ARM_SCOPE, MONITOR_SCOPE]  # type: ignore[attr-defined]


def test_bearer_auth_adds_a_token_but_keeps_an_endpoint_key() -> None:
    import requests

    from mlops_airflow.hooks.azureml import ARM_SCOPE, _BearerAuth

    class Credential:
        def get_token(self, scope: str) -> Any:
            assert scope == ARM_SCOPE
            return type("Token", (), {"token": "aad-token"})()

    auth = _BearerAuth(Credential(), ARM_SCOPE)
    arm = requests.Request("GET", "https://management.azure.com/x", auth=auth).prepare()
    assert arm.headers["Authorization"] == "Bearer aad-token"
    scoring = requests.Request(
        "POST", "https://e/score", headers={"Authorization": "Bearer key"}, auth=auth
    ).prepare()
    assert scoring.headers["Authorization"] == "Bearer key"


def test_sovereign_cloud_extras_reach_the_credential_the_token_scope_and_the_arm_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.identity

    from mlops_airflow.hooks.azureml import ARM_SCOPE, AzureMLHook
    from mlops_core.clouds.azure.client import client_for
    from tests.contract.test_azureml import PROFILE

    made: list[dict[str, Any]] = []

    class Credential:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setattr(azure.identity, "ClientSecretCredential", Credential)
    gov = {
        **CONN["extra"],
        "api_endpoint": "https://management.usgovcloudapi.net/",
        "authority": "login.microsoftonline.us",
        "disable_instance_discovery": True,
    }
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_GOV", json.dumps({**CONN, "extra": gov}))
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_TEST", json.dumps(CONN))

    hook = AzureMLHook("azure_ml_gov")
    session = hook.clients("azureml")
    assert made[-1] == {
        "tenant_id": "tenant-123",
        "client_id": "client-id-123",
        "client_secret": "client-secret-123",
        "authority": "login.microsoftonline.us",
        "disable_instance_discovery": True,
    }
    # the token is for that cloud's ARM, and the pipeline steps call that ARM (client_for)
    assert session.auth.scope == hook.arm_scope == "https://management.usgovcloudapi.net/.default"  # type: ignore[union-attr]
    assert client_for(PROFILE, hook.clients).api_root == "https://management.usgovcloudapi.net"
    assert hook.get_client().api_root == "https://management.usgovcloudapi.net"

    public = AzureMLHook("azure_ml_test")
    public.clients("azureml")
    assert made[-1] == {
        "tenant_id": "tenant-123",
        "client_id": "client-id-123",
        "client_secret": "client-secret-123",
    }
    assert public.arm_scope == ARM_SCOPE
    assert client_for(PROFILE, public.clients).api_root == "https://management.azure.com"


def test_missing_extra_names_the_connection_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowException

    from mlops_airflow.hooks.azureml import AzureMLHook

    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_TEST", json.dumps({**CONN, "extra": {"tenant_id": "t"}}))
    with pytest.raises(AirflowException, match="'azure_ml_test' has no subscription_id: add it"):
        AzureMLHook("azure_ml_test").get_client()


# -- trigger --------------------------------------------------------------------------------------


def trigger(**kw: Any) -> Any:
    from mlops_airflow.triggers.azureml import AzureMLJobTrigger

    return AzureMLJobTrigger(job_name=JOB, azure_ml_conn_id="azure_ml_test", poke_interval=0, **kw)


def test_trigger_serializes_and_round_trips() -> None:
    from airflow.sdk.module_loading import import_string

    t = trigger(max_attempts=5, workspace="ws-2")
    path, kwargs = t.serialize()
    assert path == "mlops_airflow.triggers.azureml.AzureMLJobTrigger"
    assert kwargs == {
        "job_name": JOB,
        "azure_ml_conn_id": "azure_ml_test",
        "poke_interval": 0.0,
        "max_attempts": 5,
        "subscription_id": None,
        "resource_group": None,
        "workspace": "ws-2",
        "api_root": None,
        "max_transient_errors": 10,
        "max_transient_seconds": 1800.0,
        "retry_base_seconds": 5.0,
        "retry_max_seconds": 300.0,
    }
    json.dumps(kwargs)  # what the triggerer stores
    assert import_string(path)(**kwargs).serialize() == (path, kwargs)


def test_trigger_yields_success_when_the_job_completes(rec: Recorder) -> None:
    rec.expect("GET", JOB_PATH, 200, job("Running")).expect("GET", JOB_PATH, 200, job("Completed"))
    (event,) = collect(trigger())
    rec.done()
    assert event.payload == {"status": "success", "job_name": JOB, "message": f"Azure ML job {JOB} completed"}


def test_trigger_yields_error_with_the_platform_message(rec: Recorder) -> None:
    rec.expect("GET", JOB_PATH, 200, job("Failed", error="exit code 3"))
    (event,) = collect(trigger())
    assert (
        event.payload["status"] == "error" and "is Failed: Tracking: exit code 3" in event.payload["message"]
    )


def test_trigger_gives_up_after_max_attempts(rec: Recorder) -> None:
    rec.expect("GET", JOB_PATH, 200, job("Queued")).expect("GET", JOB_PATH, 200, job("Running"))
    (event,) = collect(trigger(max_attempts=2))
    rec.done()
    assert event.payload["status"] == "error" and "still running after 2 polls" in event.payload["message"]


def test_trigger_turns_http_errors_into_an_error_event(rec: Recorder) -> None:
    rec.expect("GET", JOB_PATH, 401, {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}})
    (event,) = collect(trigger())
    assert (
        event.payload["status"] == "error"
        and "HTTP 401 InvalidAuthenticationToken: expired" in event.payload["message"]
    )


# -- operator -------------------------------------------------------------------------------------


def operator(**kw: Any) -> Any:
    from mlops_airflow.operators.azureml import AzureMLCommandJobOperator

    return AzureMLCommandJobOperator(
        task_id="train", job_name=JOB, body=BODY, azure_ml_conn_id="azure_ml_test", poke_interval=0, **kw
    )


def test_operator_submits_then_defers_on_the_trigger(rec: Recorder) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.triggers.azureml import AzureMLJobTrigger

    rec.expect("GET", JOB_PATH, 404, not_found("job")).expect("PUT", JOB_PATH, 201, job("NotStarted"))
    op = operator(deferrable=True, max_attempts=7)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    rec.done()
    assert rec.calls[1].json == BODY
    assert deferred.value.method_name == "execute_complete"
    trig = deferred.value.trigger
    assert isinstance(trig, AzureMLJobTrigger)
    assert trig.serialize()[1]["job_name"] == JOB and trig.serialize()[1]["max_attempts"] == 7


def test_operator_attaches_to_an_existing_job_on_retry(rec: Recorder) -> None:
    rec.expect("GET", JOB_PATH, 200, job("Running")).expect("GET", JOB_PATH, 200, job("Completed"))
    assert operator(deferrable=False).execute({}) == {"job_name": JOB, "status": "Completed"}
    rec.done()
    assert [c.method for c in rec.calls] == ["GET", "GET"]  # no PUT


def test_operator_fails_synchronously_with_the_job_error(rec: Recorder) -> None:
    from airflow.sdk.exceptions import AirflowException

    rec.expect("GET", JOB_PATH, 404, not_found("job")).expect("PUT", JOB_PATH, 201, job("Queued"))
    rec.expect("GET", JOB_PATH, 200, job("Canceled", error="cancelled by user"))
    with pytest.raises(AirflowException, match="is Canceled: Tracking: cancelled by user"):
        operator(deferrable=False).execute({})


def test_execute_complete(rec: Recorder) -> None:
    from airflow.sdk.exceptions import AirflowException

    op = operator()
    assert op.execute_complete({}, {"status": "success", "job_name": JOB, "message": "ok"}) == {
        "job_name": JOB,
        "status": "Completed",
    }
    with pytest.raises(AirflowException, match="exit code 3"):
        op.execute_complete({}, {"status": "error", "job_name": JOB, "message": "job is Failed: exit code 3"})
    with pytest.raises(AirflowException, match="returned no event"):
        op.execute_complete({}, None)


def test_operator_defaults_follow_operators_default_deferrable() -> None:
    import inspect

    from mlops_airflow.operators.azureml import AzureMLCommandJobOperator

    assert set(AzureMLCommandJobOperator.template_fields) == {"job_name", "body"}
    default = inspect.signature(AzureMLCommandJobOperator.__init__).parameters["deferrable"].default
    assert default is False  # [operators] default_deferrable is unset in the test environment
