# Point QuoteWatch at LocalStack instead of the built-in emulators:
#   source localstack/env.sh && npm run quotewatch -- provision
# The SDK clients (src/aws/clients.ts) read only these standard variables, so nothing else changes.
LOCALSTACK_URL="${LOCALSTACK_URL:-http://localhost:4566}"

export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_ENDPOINT_URL_KINESIS="$LOCALSTACK_URL"
export AWS_ENDPOINT_URL_DYNAMODB="$LOCALSTACK_URL"
export AWS_ENDPOINT_URL_S3="$LOCALSTACK_URL"
# Metrics go here only with METRICS_SINK=cloudwatch (the deployed tasks' sink).
export AWS_ENDPOINT_URL_CLOUDWATCH="$LOCALSTACK_URL"
export AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED
export AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED
export MODEL_URI=s3://quotewatch-models/registry
