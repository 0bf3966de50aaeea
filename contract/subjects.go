package contract

// Request/reply endpoints. Each is served by a nats micro service, so
// replicas share the load through the micro queue group and are listed
// under $SRV.
const (
	RoomsService    = "rooms"
	MessagesService = "messages"

	SubjectRoomCreate  = "wisp.rooms.create"
	SubjectRoomJoin    = "wisp.rooms.join"
	SubjectRoomTTL     = "wisp.rooms.ttl"
	SubjectRoomAuth    = "wisp.rooms.authorize"
	SubjectRoomDestroy = "wisp.rooms.destroy"

	SubjectMessageSend = "wisp.messages.send"
	SubjectMessageList = "wisp.messages.list"
)

// Event names, as browsers see them in the "event" field of a frame.
const (
	EventMessage = "chat.message"
	EventDestroy = "chat.destroy"
)

// HeaderRepeat marks an event published once more after its publisher's
// NATS connection was lost and came back (platform/republish): the first
// copy may have died with the old connection, or may have arrived.
const HeaderRepeat = "Wisp-Repeat"

// HeaderTimeout carries, on a request, how many milliseconds its caller
// will wait for the answer (platform/natsrpc): relative, as gRPC's
// grpc-timeout, so the two machines' clocks need not agree. The server
// does not work on a request whose caller has stopped waiting.
const HeaderTimeout = "Wisp-Timeout"

// Reasons a room ends, carried in chat.destroy.
const (
	ReasonDestroyed = "destroyed"
	ReasonExpired   = "expired"
)

// MessageSubject is where chat.message events of one room are published.
func MessageSubject(roomID string) string { return EventMessage + "." + roomID }

// DestroySubject is where the chat.destroy event of one room is published.
func DestroySubject(roomID string) string { return EventDestroy + "." + roomID }

// RoomEventsSubject matches every event of one room; a gateway subscribes to
// it while it has a client in that room, so it never receives other rooms'
// traffic.
func RoomEventsSubject(roomID string) string { return "chat.*." + roomID }

// AllDestroys matches chat.destroy of every room (tests and tooling).
const AllDestroys = EventDestroy + ".*"

// AllMessages matches chat.message of every room (tests and tooling).
const AllMessages = EventMessage + ".*"
