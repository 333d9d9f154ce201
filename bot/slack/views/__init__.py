"""Block Kit builders: values in, slack_sdk models or message payloads out. No Slack or service calls
here, so every view can be built (and its Slack limits checked) without a network."""
