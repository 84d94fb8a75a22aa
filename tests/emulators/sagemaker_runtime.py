"""A SageMaker runtime (``InvokeEndpoint``) in front of moto's SageMaker control plane.

moto's InvokeEndpoint answers every request with a canned body, whatever the endpoint serves, so
a smoke test on it can only ever fail. :class:`SageMakerRuntime` serves
``POST /endpoints/<name>/invocations`` as SageMaker would with MLflow's serving container
(``mlflow sagemaker build-and-push-container``, the image the package deploys): it follows what
the endpoint really points at on moto (DescribeEndpoint -> its endpoint config -> the variant's
model -> ``PrimaryContainer.ModelDataUrl``), takes that ``model.tar.gz`` from moto's S3, unpacks
it (SageMaker unpacks it to ``/opt/ml/model``), loads it with ``mlflow.pyfunc`` (the flavor in
the model's ``MLFLOW_DEPLOYMENT_FLAVOR_NAME``) and answers with the MLflow scoring server's own
``invocations`` function. A model that is replaced in S3 is what the endpoint serves next.

The code under test reaches it the way a deployment can point one AWS service elsewhere: the
``aws_default`` connection's ``service_config`` (``{"sagemaker-runtime": {"endpoint_url": ...}}``,
honoured by the amazon provider's ``AwsBaseHook``), never a switch in the product.

A request that SageMaker would refuse (no SigV4 signature for service ``sagemaker``, an unknown
or not-InService endpoint, a model that is not the MLflow flavor the container serves) is kept
in :attr:`violations` through :class:`~tests.emulators.loopback.Invalid`, so a test that asserts
it empty fails even when the code under test swallows the error.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.emulators.loopback import Invalid, LoopbackAPI
from tests.helpers import load_as_serving_container

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.emulators.loopback import Request


class SageMakerRuntime:
    """``InvokeEndpoint`` answered by the model the endpoint's config names, read from moto.

    :param control: boto3 client factory for moto (``sagemaker`` and ``s3`` clients).
    """

    def __init__(self, control: Callable[[str], Any]) -> None:
        self.control = control
        self.api = LoopbackAPI("sagemaker-runtime")
        self.api.route("POST", r"/endpoints/(?P<endpoint>[^/]+)/invocations")(self._invoke)
        self.served: list[dict[str, Any]] = []  # endpoint, ModelDataUrl, rows, answer per request
        self._tmp = tempfile.TemporaryDirectory(prefix="sagemaker-runtime-")
        self._loaded: dict[tuple[str, str], Any] = {}  # (ModelDataUrl, S3 ETag) -> pyfunc model

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def violations(self) -> list[str]:
        return self.api.violations

    def start(self) -> SageMakerRuntime:
        self.api.start()
        return self

    def stop(self) -> None:
        self.api.stop()
        self._tmp.cleanup()

    def __enter__(self) -> SageMakerRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what SageMaker does for one request -------------------------------------------------

    def _model_data(self, endpoint: str) -> tuple[str, dict[str, str]]:
        """The ``ModelDataUrl`` and container environment the endpoint serves now (moto's state)."""
        from botocore.exceptions import ClientError

        sm = self.control("sagemaker")
        try:
            described = sm.describe_endpoint(EndpointName=endpoint)
        except ClientError as err:
            raise Invalid(f"Endpoint {endpoint} not found ({err})") from err
        if described["EndpointStatus"] != "InService":
            raise Invalid(f"Endpoint {endpoint} is {described['EndpointStatus']}, not InService")
        config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        (variant,) = config["ProductionVariants"]
        container = sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
        return str(container["ModelDataUrl"]), dict(container.get("Environment") or {})

    def _load(self, model_data: str, env: dict[str, str]) -> Any:
        """Unpack ``model.tar.gz`` as SageMaker does and load it as the MLflow container does."""

        flavor = env.get("MLFLOW_DEPLOYMENT_FLAVOR_NAME", "python_function")
        if flavor != "python_function":
            raise Invalid(f"MLflow's serving container serves flavor python_function here, not {flavor!r}")
        bucket, _, key = model_data.removeprefix("s3://").partition("/")
        s3 = self.control("s3")
        etag = str(s3.head_object(Bucket=bucket, Key=key)["ETag"])
        if (model_data, etag) not in self._loaded:
            blob = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            folder = Path(self._tmp.name) / f"model-{len(self._loaded)}"
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                tar.extractall(folder, filter="data")
            if not (folder / "MLmodel").exists():
                raise Invalid(f"{model_data} has no MLmodel at its top: the container cannot load it")
            with warnings.catch_warnings():  # skops' type scan warns once per attribute it probes
                warnings.simplefilter("ignore")
                self._loaded[(model_data, etag)] = load_as_serving_container(str(folder))
        return self._loaded[(model_data, etag)]

    def _invoke(self, req: Request) -> tuple[int, Any]:
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        auth = req.headers.get("Authorization", "")
        if "/sagemaker/aws4_request" not in auth:
            raise Invalid(
                f"InvokeEndpoint must be signed with SigV4 for service sagemaker; got {auth[:80]!r}"
            )
        endpoint = req.groups["endpoint"]
        model_data, env = self._model_data(endpoint)
        model = self._load(model_data, env)
        content_type = req.headers.get("Content-Type", "application/json")
        body = req.body if isinstance(req.body, str) else json.dumps(req.body)
        try:
            answer = scoring_server.invocations(body, content_type, model, model.metadata.get_input_schema())
        except MlflowException as err:  # the container answers 400; SageMaker wraps it as ModelError
            return 424, {
                "__type": "ModelError",
                "message": f"Received client error (400) from primary with message {err.message!r}",
                "OriginalStatusCode": 400,
            }
        parsed = json.loads(answer.response) if answer.mimetype == "application/json" else answer.response
        split = req.body.get("dataframe_split", {}) if isinstance(req.body, dict) else {}
        rows = len(split.get("data", []))
        self.served.append({"endpoint": endpoint, "model_data": model_data, "rows": rows, "answer": parsed})
        return answer.status, parsed
