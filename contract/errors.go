package contract

import "fmt"

// Error codes carried in the Nats-Service-Error-Code header of a failed
// reply. They are HTTP status codes so the gateway maps them one to one.
const (
	CodeBadRequest   = "400"
	CodeUnauthorized = "401"
	CodeNotFound     = "404"
	CodeConflict     = "409"
	CodeTooLarge     = "413"
	CodeTooMany      = "429"
	CodeInternal     = "500"
	CodeUnavailable  = "503"
)

// Headers a nats micro service sets on an error reply.
const (
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// Error is a failed reply from a wisp service.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s", e.Code, e.Description) }

// ErrorFromHeader returns the service error carried in a reply's headers, or
// nil when the reply is a success.
func ErrorFromHeader(h map[string][]string) *Error {
	codes := h[HeaderErrorCode]
	if len(codes) == 0 || codes[0] == "" {
		return nil
	}
	e := &Error{Code: codes[0]}
	if d := h[HeaderError]; len(d) > 0 {
		e.Description = d[0]
	}
	return e
}
