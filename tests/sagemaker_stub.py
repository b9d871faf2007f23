"""A loopback endpoint that speaks SageMaker's JSON API for one operation: DescribeLabelingJob.

No local emulator serves SageMaker's labeling jobs (moto has none), so the tests run this
instead. It is strict where the real service is:
- the request must be a POST of `application/x-amz-json-1.1` with
  `X-Amz-Target: SageMaker.DescribeLabelingJob` and a `{"LabelingJobName": ...}` body;
- its SigV4 signature is recomputed with botocore from the test credentials and must match
  (service `sagemaker`, the region given on the command line);
- every description it serves is first validated against botocore's model of the
  operation's output shape, so a test cannot pass on a made-up answer.

usage: python3 sagemaker_stub.py --port PORT --jobs JOBS.json --calls CALLS.jsonl [--region R]

JOBS.json maps a job name to one of:
  {"describe": {...DescribeLabelingJob output...}}
  {"error": {"status": 400, "type": "AccessDeniedException", "message": "..."}}
  {"describe": {...}, "throttle": N}   the first N calls are throttled, then it answers
Every call is appended to CALLS.jsonl as {"job": NAME, "status": STATUS}.
"""

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

TARGET = "SageMaker.DescribeLabelingJob"


def output_shape():
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("DescribeLabelingJob").output_shape


def validate(description, shape):
    report = ParamValidator().validate(description, shape)
    if report.has_errors():
        raise SystemExit("the stub's description is not valid for botocore:\n" + report.generate_report())


def signature_ok(handler, body, region):
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    scope = fields["Credential"].split("/")
    if scope[2] != region or scope[3] != "sagemaker":
        return False
    signed = fields["SignedHeaders"].split(";")
    headers = {h: handler.headers[h] for h in signed if h != "host" and h in handler.headers}
    request = AWSRequest(method="POST", url="http://" + handler.headers["Host"] + "/", data=body,
                         headers=headers)
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                        os.environ.get("AWS_SESSION_TOKEN"))
    signer = SigV4Auth(creds, "sagemaker", region)
    # Sign exactly the headers the client signed.
    signer.headers_to_sign = lambda req: _only(req, signed)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return expected == fields["Signature"]


def _only(request, names):
    from botocore.awsrequest import HTTPHeaders

    out = HTTPHeaders()
    for name in names:
        if name == "host":
            out["host"] = request.url.split("/")[2]
        else:
            out[name] = request.headers[name]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jobs", required=True)
    p.add_argument("--calls", required=True)
    p.add_argument("--region", default="us-east-1")
    args = p.parse_args()
    shape = output_shape()
    with open(args.jobs) as f:
        jobs = json.load(f)
    for job in jobs.values():
        if "describe" in job:
            validate(job["describe"], shape)
    throttled = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, job, status, payload, error_type=None):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            if error_type:
                self.send_header("x-amzn-ErrorType", error_type + ":http://internal.amazon.com/coral/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with open(args.calls, "a") as f:
                f.write(json.dumps({"job": job, "status": status}) + "\n")

        def fail(self, job, status, error_type, message):
            self.answer(job, status, {"__type": error_type, "Message": message}, error_type)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("X-Amz-Target") != TARGET or \
                    self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                return self.fail(None, 400, "UnknownOperationException", "only DescribeLabelingJob")
            if not signature_ok(self, body, args.region):
                return self.fail(None, 403, "InvalidSignatureException", "the signature does not match")
            try:
                name = json.loads(body)["LabelingJobName"]
            except (ValueError, KeyError):
                return self.fail(None, 400, "ValidationException", "LabelingJobName is required")
            job = jobs.get(name)
            if job is None:
                return self.fail(name, 400, "ResourceNotFound", f"Could not find labeling job {name}")
            if throttled.get(name, 0) < job.get("throttle", 0):
                throttled[name] = throttled.get(name, 0) + 1
                return self.fail(name, 400, "ThrottlingException", "Rate exceeded")
            if "error" in job:
                e = job["error"]
                return self.fail(name, e["status"], e["type"], e.get("message", ""))
            return self.answer(name, 200, job["describe"])

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
