package api

import _ "embed"

// OpenAPI is the API's OpenAPI 3 document, served on /v1/openapi.yaml. A
// test checks it against the routes the server registers.
//
//go:embed openapi.yaml
var OpenAPI []byte
