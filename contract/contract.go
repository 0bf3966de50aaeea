// Package contract is the wire contract shared by wisp's services: NATS
// subjects, request/reply and event payloads, error codes and the Redis key
// layout. It imports nothing outside the standard library so every service
// can depend on it without pulling in the others.
package contract

// Version is bumped whenever a payload changes incompatibly.
const Version = "1"
