"""A labelled world for the dependency graph: resources shaped like Cloud Control read-backs of
the sandbox's types (and the few related types stacks use: SNS subscriptions, queue and bucket
policies, event source mappings), and every edge a person reading them would draw.

``EDGES`` holds (dependency, dependent, via): the dependent names the dependency at the JSON
pointer ``via`` (``depends_on`` for the user's explicit ones). ``NEGATIVES`` names strings that
look like references and are not (a tag, a description, an attribute name equal to another
table's name, AWS-managed ARNs); nothing may be drawn through them.
"""

from __future__ import annotations

import json
from typing import Any

from ccstate.service.graph.model import Node

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUEUE_ENDPOINT = "http://127.0.0.1:5000"  # the sandbox's SQS URLs


def arn(service: str, resource: str, *, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


K1 = "1234abcd-12ab-34cd-56ef-1234567890ab"
K2 = "2234abcd-12ab-34cd-56ef-1234567890ab"
K1_ARN, K2_ARN = arn("kms", f"key/{K1}"), arn("kms", f"key/{K2}")
B1, B2, B3 = "orders-data", "orders-logs", "site-assets"
R1, R2, R3 = "orders-worker", "ddb-reader", "s3-replication"
R1_ARN, R2_ARN, R3_ARN = (f"arn:aws:iam::{ACCOUNT}:role/{r}" for r in (R1, R2, R3))
F1, F2 = "orders-fn", "report-fn"
F1_ARN, F2_ARN = arn("lambda", f"function:{F1}"), arn("lambda", f"function:{F2}")
Q1, Q2 = f"{QUEUE_ENDPOINT}/{ACCOUNT}/orders-queue", f"{QUEUE_ENDPOINT}/{ACCOUNT}/orders-dlq"
Q1_ARN, Q2_ARN = arn("sqs", "orders-queue"), arn("sqs", "orders-dlq")
T1 = arn("sns", "orders-events")
SUB1, SUB2 = f"{T1}:5a3c1d2e-0000-4000-8000-000000000001", f"{T1}:5a3c1d2e-0000-4000-8000-02"
V1 = "vpc-0a1b2c3d4e5f67890"
SG1, SG2 = "sg-0123456789abcdef0", "sg-0fedcba9876543210"
LG1, LG2 = "/aws/lambda/orders-fn", "/app/audit"
LG1_ARN, LG2_ARN = arn("logs", f"log-group:{LG1}:*"), arn("logs", f"log-group:{LG2}:*")
S1 = arn("secretsmanager", "secret:db-creds-AbCdEf")
TB1, TB2 = "orders", "audit"
TB1_ARN, TB2_ARN = arn("dynamodb", f"table/{TB1}"), arn("dynamodb", f"table/{TB2}")
TB1_STREAM = f"{TB1_ARN}/stream/2026-11-30T09:00:00.000"
P1, P2, P3 = "/orders/config", "/orders/table-arn", "/site/bucket-name"
A1 = "alias/orders-queue"
ESM1 = "a1b2c3d4-0000-4000-8000-00000000e5a1"
ESM2 = "a1b2c3d4-0000-4000-8000-00000000e5a2"
QP1 = "orders-queue-policy-1a2b"
BP1_ID = "orders-data-policy"

MANAGED_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _key(key_id: str, key_arn: str) -> dict[str, Any]:
    return {
        "KeyId": key_id,
        "Arn": key_arn,
        "Description": "orders encryption",
        "Enabled": True,
        "EnableKeyRotation": True,
        "KeyPolicy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        "KeySpec": "SYMMETRIC_DEFAULT",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "MultiRegion": False,
        "Origin": "AWS_KMS",
    }


def _bucket(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "BucketName": name,
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
        "DualStackDomainName": f"{name}.s3.dualstack.{REGION}.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{REGION}.amazonaws.com",
        **extra,
    }


def _sse_kms(key: str) -> dict[str, Any]:
    return {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}
        ]
    }


def _statement(action: str, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def _role(name: str, role_arn: str, role_id: str, policies: list[Any]) -> dict[str, Any]:
    return {
        "RoleName": name,
        "Arn": role_arn,
        "RoleId": role_id,
        "Path": "/",
        "AssumeRolePolicyDocument": TRUST_LAMBDA,
        "MaxSessionDuration": 3600,
        "ManagedPolicyArns": [MANAGED_POLICY],
        "Policies": policies,
    }


def _queue(url: str, queue_arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "QueueUrl": url,
        "QueueName": url.rsplit("/", 1)[-1],
        "Arn": queue_arn,
        "VisibilityTimeout": 30,
        **extra,
    }


R1_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        _statement("s3:GetObject", [f"arn:aws:s3:::{B1}", f"arn:aws:s3:::{B1}/*"]),
        _statement("sqs:SendMessage", Q1_ARN),
        _statement("sns:Publish", T1),
        _statement("dynamodb:Query", f"{TB1_ARN}/index/*"),
        _statement("kms:Decrypt", K1_ARN),
        _statement("logs:PutLogEvents", LG1_ARN),
        # One bucket matches the first pattern; the second matches two buckets: no edge.
        _statement("s3:ListBucket", [f"arn:aws:s3:::{B1[:8]}*", "arn:aws:s3:::orders-*"]),
    ],
}
R2_POLICY_TEXT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            _statement("dynamodb:GetRecords", [TB1_STREAM, TB2_ARN]),
            # A wildcard over the random suffix Secrets Manager adds to a secret's ARN.
            _statement("secretsmanager:GetSecretValue", arn("secretsmanager", "secret:db-creds-*")),
        ],
    }
)

RESOURCES: list[Node] = [
    Node(K1, "AWS::KMS::Key", _key(K1, K1_ARN)),
    Node(K2, "AWS::KMS::Key", _key(K2, K2_ARN)),
    Node(
        B1,
        "AWS::S3::Bucket",
        _bucket(
            B1,
            BucketEncryption=_sse_kms(K1_ARN),
            LoggingConfiguration={"DestinationBucketName": B2, "LogFilePrefix": "access/"},
            VersioningConfiguration={"Status": "Enabled"},
            Tags=[{"Key": "team", "Value": "orders"}],
        ),
    ),
    Node(B2, "AWS::S3::Bucket", _bucket(B2, BucketEncryption=_sse_kms(K2))),
    Node(
        B3,
        "AWS::S3::Bucket",
        _bucket(
            B3,
            ReplicationConfiguration={
                "Role": R3_ARN,
                "Rules": [
                    {
                        "Status": "Enabled",
                        "Destination": {"Bucket": f"arn:aws:s3:::{B1}"},
                    }
                ],
            },
            Tags=[{"Key": "copy-of", "Value": B1}],  # a label, not a dependency
        ),
    ),
    Node(
        R1,
        "AWS::IAM::Role",
        _role(
            R1,
            R1_ARN,
            "AROAEXAMPLEORDERSWORK1",
            [{"PolicyName": "orders", "PolicyDocument": R1_POLICY}],
        ),
    ),
    Node(
        R2,
        "AWS::IAM::Role",
        _role(
            R2,
            R2_ARN,
            "AROAEXAMPLEDDBREADER02",
            [{"PolicyName": "read", "PolicyDocument": R2_POLICY_TEXT}],
        ),
    ),
    Node(R3, "AWS::IAM::Role", _role(R3, R3_ARN, "AROAEXAMPLEREPLICATE03", [])),
    Node(
        F1,
        "AWS::Lambda::Function",
        {
            "FunctionName": F1,
            "Arn": F1_ARN,
            "Role": R1_ARN,
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Timeout": 30,
            "MemorySize": 256,
            "KmsKeyArn": K1_ARN,
            "Environment": {
                "Variables": {
                    "QUEUE_URL": Q1,
                    "TABLE_NAME": TB1,
                    "SECRET_ARN": S1,
                    "BUCKET": B1,
                    "PARAM_NAME": P1,
                    "LOG_LEVEL": "debug",
                }
            },
            "VpcConfig": {
                "SecurityGroupIds": [SG1],
                "SubnetIds": ["subnet-0aaaabbbbccccdddd"],
            },
            "DeadLetterConfig": {"TargetArn": Q2_ARN},
            "LoggingConfig": {"LogGroup": LG1, "LogFormat": "JSON"},
            "Description": f"Handles {B1} uploads",
        },
    ),
    Node(
        F2,
        "AWS::Lambda::Function",
        {
            "FunctionName": F2,
            "Arn": F2_ARN,
            "Role": R2_ARN,
            "Runtime": "python3.12",
            "Handler": "report.handler",
            "Environment": {"Variables": {"TOPIC_ARN": T1, "AUDIT": "on"}},
        },
        depends_on=(B1,),
    ),
    Node(
        Q1,
        "AWS::SQS::Queue",
        _queue(
            Q1,
            Q1_ARN,
            KmsMasterKeyId=K2,
            RedrivePolicy={"deadLetterTargetArn": Q2_ARN, "maxReceiveCount": 5},
        ),
    ),
    Node(Q2, "AWS::SQS::Queue", _queue(Q2, Q2_ARN, SqsManagedSseEnabled=True)),
    Node(
        T1,
        "AWS::SNS::Topic",
        {"TopicArn": T1, "TopicName": "orders-events", "KmsMasterKeyId": K1_ARN},
    ),
    Node(
        SUB1,
        "AWS::SNS::Subscription",
        {"Arn": SUB1, "TopicArn": T1, "Protocol": "sqs", "Endpoint": Q1_ARN},
    ),
    Node(
        SUB2,
        "AWS::SNS::Subscription",
        {"Arn": SUB2, "TopicArn": T1, "Protocol": "lambda", "Endpoint": F1_ARN},
    ),
    Node(
        QP1,
        "AWS::SQS::QueuePolicy",
        {
            "Id": QP1,
            "Queues": [Q1],
            "PolicyDocument": {
                "Statement": [
                    _statement(
                        "sqs:SendMessage",
                        Q1_ARN,
                        Principal={"Service": "sns.amazonaws.com"},
                        Condition={"ArnEquals": {"aws:SourceArn": T1}},
                    )
                ]
            },
        },
    ),
    Node(
        BP1_ID,
        "AWS::S3::BucketPolicy",
        {
            "Bucket": B1,
            "PolicyDocument": {
                "Statement": [
                    _statement("s3:GetObject", [f"arn:aws:s3:::{B1}/*"], Principal={"AWS": R1_ARN})
                ]
            },
        },
    ),
    Node(
        V1,
        "AWS::EC2::VPC",
        {
            "VpcId": V1,
            "CidrBlock": "10.0.0.0/16",
            "InstanceTenancy": "default",
            "EnableDnsSupport": True,
            "EnableDnsHostnames": False,
            "CidrBlockAssociations": ["vpc-cidr-assoc-0123456789abcdef0"],
            "Ipv6CidrBlocks": [],
            "DefaultSecurityGroup": "sg-0d0d0d0d0d0d0d0d0",
            "DefaultNetworkAcl": "acl-0e0e0e0e0e0e0e0e0",
        },
    ),
    Node(
        SG1,
        "AWS::EC2::SecurityGroup",
        {
            "Id": SG1,
            "GroupId": SG1,
            "GroupName": "orders-fn",
            "GroupDescription": "orders function",
            "VpcId": V1,
            "SecurityGroupEgress": [{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}],
        },
    ),
    Node(
        SG2,
        "AWS::EC2::SecurityGroup",
        {
            "Id": SG2,
            "GroupId": SG2,
            "GroupName": "orders-db",
            "GroupDescription": "database",
            "VpcId": V1,
            "SecurityGroupIngress": [
                {
                    "IpProtocol": "tcp",
                    "FromPort": 5432,
                    "ToPort": 5432,
                    "SourceSecurityGroupId": SG1,
                }
            ],
        },
    ),
    Node(
        LG1,
        "AWS::Logs::LogGroup",
        {"LogGroupName": LG1, "Arn": LG1_ARN, "RetentionInDays": 14, "KmsKeyId": K1_ARN},
    ),
    Node(
        LG2,
        "AWS::Logs::LogGroup",
        {"LogGroupName": LG2, "Arn": LG2_ARN, "KmsKeyId": K2_ARN, "LogGroupClass": "STANDARD"},
    ),
    Node(
        S1,
        "AWS::SecretsManager::Secret",
        {"Id": S1, "Name": "db-creds", "KmsKeyId": K2_ARN, "Description": "orders database"},
    ),
    Node(
        TB1,
        "AWS::DynamoDB::Table",
        {
            "TableName": TB1,
            "Arn": TB1_ARN,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": TB2, "AttributeType": "S"},  # a name, not the audit table
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "StreamArn": TB1_STREAM,
            "SSESpecification": {"SSEEnabled": True, "KMSMasterKeyId": K1_ARN},
        },
    ),
    Node(
        TB2,
        "AWS::DynamoDB::Table",
        {
            "TableName": TB2,
            "Arn": TB2_ARN,
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": True, "KMSMasterKeyId": K2},
        },
    ),
    Node(
        ESM1,
        "AWS::Lambda::EventSourceMapping",
        {
            "Id": ESM1,
            "EventSourceArn": TB1_STREAM,
            "FunctionName": F1,
            "StartingPosition": "LATEST",
            "DestinationConfig": {"OnFailure": {"Destination": Q2_ARN}},
        },
    ),
    Node(
        ESM2,
        "AWS::Lambda::EventSourceMapping",
        {"Id": ESM2, "EventSourceArn": Q1_ARN, "FunctionName": F2_ARN, "BatchSize": 10},
    ),
    Node(P1, "AWS::SSM::Parameter", {"Name": P1, "Type": "String", "Value": Q1}),
    Node(P2, "AWS::SSM::Parameter", {"Name": P2, "Type": "String", "Value": TB1_ARN}),
    # A bucket's plain name as a parameter's value: nothing in "/Value" says it is a bucket.
    Node(P3, "AWS::SSM::Parameter", {"Name": P3, "Type": "String", "Value": B3}),
    Node(A1, "AWS::KMS::Alias", {"AliasName": A1, "TargetKeyId": K2}),
    Node(
        f"{QUEUE_ENDPOINT}/{ACCOUNT}/jobs",
        "AWS::SQS::Queue",
        _queue(f"{QUEUE_ENDPOINT}/{ACCOUNT}/jobs", arn("sqs", "jobs"), KmsMasterKeyId=A1),
    ),
]

_SSE = "/BucketEncryption/ServerSideEncryptionConfiguration/0/ServerSideEncryptionByDefault"
_R1P = "/Policies/0/PolicyDocument/Statement"
_R2P = "/Policies/0/PolicyDocument/Statement"
_ENV = "/Environment/Variables"

EDGES: list[tuple[str, str, str]] = [
    # KMS key -> what it encrypts
    (K1, B1, f"{_SSE}/KMSMasterKeyID"),
    (K2, B2, f"{_SSE}/KMSMasterKeyID"),
    (K1, F1, "/KmsKeyArn"),
    (K2, Q1, "/KmsMasterKeyId"),
    (K1, T1, "/KmsMasterKeyId"),
    (K1, LG1, "/KmsKeyId"),
    (K2, LG2, "/KmsKeyId"),
    (K2, S1, "/KmsKeyId"),
    (K1, TB1, "/SSESpecification/KMSMasterKeyId"),
    (K2, TB2, "/SSESpecification/KMSMasterKeyId"),
    # buckets
    (B2, B1, "/LoggingConfiguration/DestinationBucketName"),
    (R3, B3, "/ReplicationConfiguration/Role"),
    (B1, B3, "/ReplicationConfiguration/Rules/0/Destination/Bucket"),
    # policy documents naming ARNs
    (B1, R1, f"{_R1P}/0/Resource/0"),
    (B1, R1, f"{_R1P}/0/Resource/1"),
    (Q1, R1, f"{_R1P}/1/Resource"),
    (T1, R1, f"{_R1P}/2/Resource"),
    (TB1, R1, f"{_R1P}/3/Resource"),
    (K1, R1, f"{_R1P}/4/Resource"),
    (LG1, R1, f"{_R1P}/5/Resource"),
    (B1, R1, f"{_R1P}/6/Resource/0"),
    (TB1, R2, f"{_R2P}/0/Resource/0"),
    (TB2, R2, f"{_R2P}/0/Resource/1"),
    (S1, R2, f"{_R2P}/1/Resource"),
    # role -> function, and what a function's settings name
    (R1, F1, "/Role"),
    (R2, F2, "/Role"),
    (Q1, F1, f"{_ENV}/QUEUE_URL"),
    (TB1, F1, f"{_ENV}/TABLE_NAME"),
    (S1, F1, f"{_ENV}/SECRET_ARN"),
    (B1, F1, f"{_ENV}/BUCKET"),
    (P1, F1, f"{_ENV}/PARAM_NAME"),
    (SG1, F1, "/VpcConfig/SecurityGroupIds/0"),
    (Q2, F1, "/DeadLetterConfig/TargetArn"),
    (LG1, F1, "/LoggingConfig/LogGroup"),
    (T1, F2, f"{_ENV}/TOPIC_ARN"),
    (B1, F2, "depends_on"),
    # queues and topics
    (Q2, Q1, "/RedrivePolicy/deadLetterTargetArn"),
    (T1, SUB1, "/TopicArn"),
    (Q1, SUB1, "/Endpoint"),
    (T1, SUB2, "/TopicArn"),
    (F1, SUB2, "/Endpoint"),
    (Q1, QP1, "/Queues/0"),
    (Q1, QP1, "/PolicyDocument/Statement/0/Resource"),
    (T1, QP1, "/PolicyDocument/Statement/0/Condition/ArnEquals/aws:SourceArn"),
    (B1, BP1_ID, "/Bucket"),
    (B1, BP1_ID, "/PolicyDocument/Statement/0/Resource/0"),
    (R1, BP1_ID, "/PolicyDocument/Statement/0/Principal/AWS"),
    # network
    (V1, SG1, "/VpcId"),
    (V1, SG2, "/VpcId"),
    (SG1, SG2, "/SecurityGroupIngress/0/SourceSecurityGroupId"),
    # streams and event sources
    (TB1, ESM1, "/EventSourceArn"),
    (F1, ESM1, "/FunctionName"),
    (Q2, ESM1, "/DestinationConfig/OnFailure/Destination"),
    (Q1, ESM2, "/EventSourceArn"),
    (F2, ESM2, "/FunctionName"),
    # parameters holding other resources' values
    (Q1, P1, "/Value"),
    (TB1, P2, "/Value"),
    (B3, P3, "/Value"),
    # a key alias, and a queue encrypted through it
    (K2, A1, "/TargetKeyId"),
    (A1, f"{QUEUE_ENDPOINT}/{ACCOUNT}/jobs", "/KmsMasterKeyId"),
]

# Strings that name something but draw no edge (unmanaged, a label, or a coincidence).
NEGATIVES: list[tuple[str, str]] = [
    (B3, "/Tags/0/Value"),
    (F1, "/Description"),
    (TB1, "/AttributeDefinitions/1/AttributeName"),
    (R1, "/ManagedPolicyArns/0"),
    (R1, "/AssumeRolePolicyDocument/Statement/0/Principal/Service"),
    (F1, "/VpcConfig/SubnetIds/0"),
    (F1, f"{_ENV}/LOG_LEVEL"),
    (K1, "/KeyPolicy/Statement/0/Principal/AWS"),
    (R1, f"{_R1P}/6/Resource/1"),
]


def schema_lookup() -> Any:
    """The schemas cfn-lint ships (what the offline provider reads), by type name."""
    from ccstate.backends.schemas import bundled_schema_document
    from ccstate.service.changes.schema import ResourceSchema

    def lookup(type_name: str) -> ResourceSchema | None:
        doc = bundled_schema_document(type_name)
        return ResourceSchema.from_document(doc) if doc else None

    return lookup


def evaluate() -> dict[str, Any]:
    """Precision and recall of the graph on this world, with the misses and false edges."""
    from ccstate.service.graph.graph import DependencyGraph

    graph = DependencyGraph.build(RESOURCES, schema_lookup())
    found = {(e.dependency, e.dependent, e.via) for e in graph.edges()}
    labelled = set(EDGES)
    right = found & labelled
    return {
        "labelled": len(labelled),
        "found": len(found),
        "precision": len(right) / len(found) if found else 1.0,
        "recall": len(right) / len(labelled),
        "misses": sorted(labelled - found),
        "false": sorted(found - labelled),
        "by_provenance": {
            p: sum(1 for e in graph.edges() if e.provenance == p)
            for p in ("schema", "value", "explicit")
        },
    }


if __name__ == "__main__":
    print(json.dumps(evaluate(), indent=2))
