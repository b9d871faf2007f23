"""Validates a CreateLabelingJob request (JSON on stdin) against AWS's own service model.

botocore carries the SageMaker API model and validates parameters offline: required members,
types, lengths and ranges. Exit 0 when valid; otherwise the report is printed and exit is 1.
"""
import json
import sys

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

model = botocore.session.get_session().get_service_model("sagemaker")
shape = model.operation_model("CreateLabelingJob").input_shape
try:
    validate_parameters(json.load(sys.stdin), shape)
except ParamValidationError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
print("valid CreateLabelingJob request")
