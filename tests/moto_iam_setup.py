"""Prepare a moto server that enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT=5).

The first five calls are unauthenticated and create: a job role allowed to use S3, and a
"lambda" user allowed only to assume roles. The sample store is then uploaded with the role's
credentials. Prints the user's access key as JSON; the function runs with it.

usage: python3 moto_iam_setup.py ENDPOINT STORE_DIR
"""
import json
import os
import sys

import boto3

endpoint, store = sys.argv[1], sys.argv[2]
common = dict(endpoint_url=endpoint, region_name="us-east-1")
iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **common)
anyone = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
iam.create_role(RoleName="GroundTruthJobRole", AssumeRolePolicyDocument=json.dumps(anyone))
iam.put_role_policy(RoleName="GroundTruthJobRole", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
iam.create_user(UserName="lambda")
iam.put_user_policy(UserName="lambda", PolicyName="sts", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
user_key = iam.create_access_key(UserName="lambda")["AccessKey"]

sts = boto3.client("sts", aws_access_key_id=user_key["AccessKeyId"], aws_secret_access_key=user_key["SecretAccessKey"], **common)
creds = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/GroundTruthJobRole", RoleSessionName="setup")["Credentials"]
s3 = boto3.client("s3", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                  aws_session_token=creds["SessionToken"], **common)
# moto's SigV4 check rejects keys holding ':' once IAM is enforced (real S3 accepts them),
# so keys are uploaded with ':' replaced by '-', and so are the URIs inside the JSON files.
objects = []
for bucket in sorted(os.listdir(store)):
    root = os.path.join(store, bucket)
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            objects.append((bucket, os.path.relpath(p, root), p))
renames = {f"s3://{b}/{k}": f"s3://{b}/{k.replace(':', '-')}" for b, k, _ in objects if ":" in k}
for bucket in sorted({b for b, _, _ in objects}):
    s3.create_bucket(Bucket=bucket)
for bucket, key, path in objects:
    body = open(path, "rb").read()
    if path.endswith(".json"):
        text = body.decode()
        for old, new in renames.items():
            text = text.replace(old, new)
        body = text.encode()
    s3.put_object(Bucket=bucket, Key=key.replace(":", "-"), Body=body)
print(json.dumps({"AccessKeyId": user_key["AccessKeyId"], "SecretAccessKey": user_key["SecretAccessKey"]}))
