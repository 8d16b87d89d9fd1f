"""The functions the OpenAPI document's operationIds point at, one module per API area."""
